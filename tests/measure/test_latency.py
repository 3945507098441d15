"""Real onnxruntime sessions on exported tiny models."""

from __future__ import annotations

import dataclasses

import pytest

from hwcompress.errors import ModelError
from hwcompress.export import export_fp32
from hwcompress.hardware import load_profile
from hwcompress.measure.latency import measure_local_many
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.roofline import roofline
from hwcompress.measure.sources import measure_latency

pytestmark = pytest.mark.onnx


@pytest.fixture
def tiny_onnx(tiny_net, tmp_path):
    return export_fp32(tiny_net, (1, 1, 8, 8), tmp_path / "tiny.onnx")


def test_local_latency_statistics_and_kernels(tiny_onnx):
    r = measure_latency(tiny_onnx, load_profile("x86_host"), runs=30, warmup=3, min_time_s=0)
    assert r.source == "local"
    assert r.runs == 30
    assert 0 < r.min_ms <= r.median_ms <= r.p90_ms
    assert r.stdev_ms >= 0
    assert r.provider == "CPUExecutionProvider"
    # The optimised graph still computes the conv and the linear layer in float.
    assert any(k.endswith("Conv") for k in r.float_compute_kernels)
    assert r.integer_kernels == {}


def test_min_time_extends_the_run_count(tiny_onnx):
    r = measure_latency(tiny_onnx, load_profile("x86_host"), runs=5, warmup=0, min_time_s=0.2)
    assert r.runs > 5


def test_unavailable_provider_is_stated(tiny_onnx):
    r = measure_latency(tiny_onnx, load_profile("jetson_nano"), runs=5, warmup=0, min_time_s=0)
    assert r.provider == "CPUExecutionProvider"
    assert any("TensorrtExecutionProvider is not available" in n for n in r.notes)


def test_roofline_source_estimates_without_running(tiny_onnx):
    profile = load_profile("stm32h7")
    r = measure_latency(tiny_onnx, profile)
    assert r.source == "roofline" and r.runs == 0
    # an fp32 model is estimated at the fp32 peak: the estimate is bench's roofline floor
    stats = analyze_onnx(tiny_onnx)
    assert stats.precision == "fp32"
    assert r.median_ms == pytest.approx(roofline(stats, profile, "fp32").floor_ms)
    assert "not measured" in r.notes[0]


def test_roofline_by_hand():
    from hwcompress.measure.stats import ModelStats

    profile = load_profile("x86_host")
    profile = dataclasses.replace(
        profile, latency=dataclasses.replace(profile.latency, roofline_efficiency=0.5)
    )
    stats = ModelStats(
        params=0,
        macs=1_000_000,
        weight_bytes=35_000_000,
        peak_activation_bytes=0,
        activation_traffic_bytes=0,
        input_shape=(),
    )
    est = roofline(stats, profile, "fp32")
    # compute 2e6 / 332.8e9 s; memory 35e6 / 35e9 s = 1 ms, halved efficiency → 2 ms
    assert est.memory_ms == pytest.approx(2.0)
    assert est.compute_ms == pytest.approx(2e6 / 332.8e9 * 1e3 / 0.5)
    assert est.bound == "memory" and est.floor_ms == pytest.approx(2.0)


def test_bad_onnx_file_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        analyze_onnx(bad)
    with pytest.raises(ModelError, match="no such file"):
        measure_latency(tmp_path / "missing.onnx", load_profile("x86_host"))


def test_latency_says_where_it_was_measured(tiny_onnx):
    import platform

    board = load_profile("jetson_nano")
    r = measure_latency(tiny_onnx, board, runs=5, warmup=0, min_time_s=0)
    assert r.where.startswith("this host (") and platform.machine() in r.where
    if platform.machine() != "aarch64":
        assert "not on the jetson_nano" in r.warning
    here = dataclasses.replace(
        board, runtime=dataclasses.replace(board.runtime, machines=(platform.machine(),))
    )
    r = measure_latency(tiny_onnx, here, runs=5, warmup=0, min_time_s=0)
    # the right machine, but TensorRT is missing, so the CPU ran: still not the device's figure
    assert "not the profile's TensorrtExecutionProvider" in r.warning
    cpu = dataclasses.replace(
        here, runtime=dataclasses.replace(here.runtime, providers=("CPUExecutionProvider",))
    )
    assert measure_latency(tiny_onnx, cpu, runs=5, warmup=0, min_time_s=0).warning == ""
    assert "roofline" in measure_latency(tiny_onnx, load_profile("stm32h7")).where


def test_measuring_sessions_do_not_spin_between_inferences(tiny_onnx):
    # A session timed in turn with others must not run beside their spinning worker threads
    # (that made a teacher 2.4x slower in turn than alone); every measuring session turns the
    # spin off, the ones of in-turn timing and of a single measurement alike.
    from hwcompress.measure.latency import _session

    session = _session(tiny_onnx, ("CPUExecutionProvider",), 2)[0]
    entry = "session.intra_op.allow_spinning"
    assert session.get_session_options().get_session_config_entry(entry) == "0"
    results = measure_local_many([tiny_onnx, tiny_onnx], load_profile("x86_host"), rounds=2)
    assert len(results) == 2 and all(r.median_ms > 0 for r in results)
