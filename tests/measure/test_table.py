"""The per-layer latency table: cutting models into layers, calibration, the table source."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from hwcompress.errors import LatencyError
from hwcompress.export import export_fp32
from hwcompress.hardware import load_profile
from hwcompress.measure.calibrate import CalibrateConfig, calibrate, random_students
from hwcompress.measure.layers import layer_model, layers_of
from hwcompress.measure.sources import measure_latency
from hwcompress.measure.table import LatencyTable
from hwcompress.models import build_builtin
from hwcompress.models.builtin import SmallVGG

SHAPE = (1, 1, 8, 8)


def _run(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)[0]


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_layers_partition_the_graph_and_run_alone(name, tmp_path):
    model = onnx.load(str(export_fp32(build_builtin(name).eval(), SHAPE, tmp_path / "m.onnx")))
    inferred, layers = layers_of(model)
    nodes = [i for layer in layers for i in layer.nodes]
    real = [i for i, n in enumerate(inferred.graph.node) if n.op_type != "Constant"]
    assert sorted(nodes) == real  # every node in exactly one layer
    assert any(layer.kind.startswith("Conv+") for layer in layers)  # light ops join
    # running the layers one by one reproduces the whole model
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    values = {model.graph.input[0].name: x}
    for layer in layers:
        sub = layer_model(inferred, layer)
        onnx.checker.check_model(sub)
        values[layer.output] = _run(sub, {n: values[n] for n in layer.inputs})
    whole = _run(model, {model.graph.input[0].name: x})
    np.testing.assert_allclose(values[model.graph.output[0].name], whole, rtol=1e-4, atol=1e-5)


def test_equal_layers_have_equal_keys_and_widths_change_them():
    teacher = build_builtin("vgg").eval()
    students = random_students(teacher, SHAPE, 4, seed=1)
    assert len(students) == 4 and len({g.key() for _, g in students}) == 4


@pytest.fixture(scope="module")
def table_and_rows():
    teacher = build_builtin("vgg").eval()
    profile = load_profile("x86_host")
    cfg = CalibrateConfig(students=3, fit_students=6, check=2, runs=5, min_time_s=0.01)
    return calibrate(teacher, SHAPE, profile, cfg)


def test_calibrate_builds_a_checked_table(table_and_rows, tmp_path):
    table, rows = table_and_rows
    assert table.base_ms > 0 and len(table.entries) >= 10
    assert all(e["ms"] >= 0 and e["macs"] >= 0 for e in table.entries.values())
    assert len(rows) == 2 and all(r["predicted_ms"] > 0 and r["measured_ms"] > 0 for r in rows)
    assert table.meta["check"]["models"] == 2 and 0 <= table.meta["check"]["within"] <= 1
    assert table.meta["source"] == "local"
    again = LatencyTable.load(table.save(tmp_path / "t.json"))
    assert again.entries == table.entries and again.base_ms == table.base_ms


def test_the_table_source_predicts_and_unknown_layers_are_fitted(
    table_and_rows, profile_data, write_profile, tmp_path
):
    table, _ = table_and_rows
    profile_data["latency"] = {"source": "table", "budget_ms": 10, "table": "dev.latency.json"}
    profile = load_profile(write_profile(profile_data))
    assert profile.latency_table_path() == tmp_path / "dev.latency.json"
    with pytest.raises(LatencyError, match="hwcompress calibrate"):
        measure_latency(
            export_fp32(build_builtin("vgg").eval(), SHAPE, tmp_path / "t.onnx"), profile
        )
    # a table without the kernel-level fit (written before it existed): per-layer sums
    dataclasses.replace(table, kernels=None).save(profile.latency_table_path())
    known = measure_latency(tmp_path / "t.onnx", profile)  # the teacher: every layer known
    assert known.source == "table" and known.median_ms > 0 and "fitted" not in known.notes[0]
    assert str(profile.latency_table_path()) in known.where  # where the figure came from
    # a model of other widths: its layers are not in the table, they are fitted
    other = export_fp32(SmallVGG(widths=(5, 7, 9, 11, 13, 15)).eval(), SHAPE, tmp_path / "o.onnx")
    fitted = measure_latency(other, profile)
    assert fitted.median_ms > 0 and "fitted" in fitted.notes[0]
    # calibration scored both predictors on held-out whole models and kept the better one
    chosen = table.meta["predictor"]
    assert chosen["chosen"] in ("kernels", "layers") and chosen["held_out"] >= 1
    assert bool(table.kernels) == (chosen["chosen"] == "kernels")
    # a table with a kernel-level fit predicts from the kernels onnxruntime runs, any widths
    from hwcompress.measure.kernels import KernelFit, kernel_features

    feats = [kernel_features(p, profile) for p in (tmp_path / "t.onnx", other)]
    fitted_table = dataclasses.replace(table, kernels=KernelFit.fit(feats, [0.2, 0.1]))
    fitted_table.save(profile.latency_table_path())
    kernel = measure_latency(other, profile)
    assert kernel.median_ms > 0 and "kernel-level fit" in kernel.notes[0]
    (tmp_path / "dev.latency.json").write_text(json.dumps({"format": 1, "entries": 3}))
    with pytest.raises(LatencyError, match="not a latency table"):
        measure_latency(tmp_path / "t.onnx", profile)


def test_calibrate_command_writes_the_table_beside_the_profile(profile_data, write_profile):
    from hwcompress.cli import app

    profile_data["latency"]["runs"] = 5
    profile_data["latency"]["min_time_s"] = 0.01
    path = write_profile(profile_data, "board.yaml")
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--profile",
            str(path),
            "--students",
            "2",
            "--fit-students",
            "4",
            "--check",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    table = Path(path).parent / f"{profile_data['name']}.latency.json"
    assert table.is_file() and "within ±10%" in res.output
    assert LatencyTable.load(table).meta["check"]["models"] == 1


def test_search_with_the_table_source_re_measures_the_best(
    tiny_search, table_and_rows, profile_data, write_profile
):
    from hwcompress.search import SearchConfig, run_search

    table, _ = table_and_rows
    profile_data["latency"] = {"source": "table", "budget_ms": 10, "runs": 5, "min_time_s": 0.01}
    path = write_profile(profile_data, "tabled.yaml")
    table.save(load_profile(path).latency_table_path())
    result = run_search(SearchConfig(**{**tiny_search, "profile": str(path)}))
    assert all(c.metrics.get("latency_ms", 1) > 0 for c in result.candidates)
    check = json.loads(result.results_path.read_text())["best"]["latency_check"]
    assert check["source"] == "local" and check["best_ms"] > 0 and check["teacher_ms"] > 0


def test_kernel_features_read_the_graph_onnxruntime_runs(tmp_path, profile_data, write_profile):
    from hwcompress.measure.kernels import fit_kernels, kernel_features, predict_kernels
    from hwcompress.measure.onnx_graph import analyze_onnx

    profile = load_profile(write_profile(profile_data))
    widths = [(16, 16, 32, 32, 64, 64), (5, 7, 9, 11, 13, 15)]
    feats, paths = [], []
    for i, w in enumerate(widths):
        paths.append(export_fp32(SmallVGG(widths=w).eval(), SHAPE, tmp_path / f"m{i}.onnx"))
        feats.append(kernel_features(paths[-1], profile))
    for f, path in zip(feats, paths, strict=True):
        convs = sum(
            v for k, v in f.items() if k.endswith("_n") and k.split("_")[0] in ("blocked", "conv")
        )
        assert convs == 6  # every convolution is one kernel, whatever class it runs as
        # padded channel counts never make a kernel cheaper than the convolution it computes
        conv_macs = sum(v for k, v in f.items() if "_macs" in k and "matmul" not in k)
        assert conv_macs * 1e6 >= analyze_onnx(path).macs - 64 * 10
    fit = fit_kernels(feats * 2, [0.2, 0.1, 0.21, 0.09])
    assert all(v >= 0 for v in fit.values())
    assert predict_kernels(fit, feats[0])[0] > predict_kernels(fit, feats[1])[0] > 0


def test_kernel_fit_corrects_what_the_sums_miss_and_is_plain_data():
    from hwcompress.measure.kernels import MIN_CORRECTION_MODELS, KernelFit

    rng = np.random.default_rng(0)
    feats = [{"conv_n": float(n), "conv_macs_big": float(m)} for n, m in rng.uniform(1, 9, (80, 2))]
    # a latency no sum of features gives: conv_macs costs twice as much past 5 M
    truth = [
        0.01 * f["conv_n"] + 0.02 * f["conv_macs_big"] * (2 if f["conv_macs_big"] > 5 else 1)
        for f in feats
    ]
    linear = KernelFit.fit(feats, truth, correct=False)
    fit = KernelFit.fit(feats, truth)
    assert not linear.correction and fit.correction

    def worst(model):
        return max(abs(model.predict(f)[0] / t - 1) for f, t in zip(feats, truth, strict=True))

    assert worst(fit) < worst(linear) / 2
    again = KernelFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert again.predict(feats[3]) == fit.predict(feats[3])
    assert (
        KernelFit.fit(
            feats[: MIN_CORRECTION_MODELS - 1], truth[: MIN_CORRECTION_MODELS - 1]
        ).correction
        == {}
    )
    broken = json.loads(json.dumps(fit.to_dict()))
    for bad in (999, 0):  # outside the tree, or a loop back to the root
        broken["correction"]["trees"][0]["left"][0] = bad
        with pytest.raises(ValueError, match="outside"):
            KernelFit.from_dict(broken)


def test_tables_of_the_older_format_load_without_their_kernel_fit(table_and_rows, tmp_path):
    table, _ = table_and_rows
    data = {**table.to_dict(), "format": 1, "kernels": {"base": 0.01, "blocked_macs": 0.1}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    old = LatencyTable.load(path)
    assert old.kernels is None and old.entries == table.entries
    assert "calibrate" in old.meta["note"]


def test_whole_models_are_timed_in_turn(tmp_path, monkeypatch):
    from hwcompress.errors import ModelError
    from hwcompress.measure import latency
    from hwcompress.measure.latency import measure_local_many

    profile = load_profile("x86_host")
    paths = [
        export_fp32(SmallVGG(widths=w).eval(), SHAPE, tmp_path / f"m{i}.onnx")
        for i, w in enumerate([(4, 4, 8, 8, 8, 8), (8, 8, 16, 16, 16, 16)])
    ]
    side_by_side = latency.interleaved_latency(
        dict(zip("ab", paths, strict=True)), SHAPE, rounds=2, runs=3
    )
    assert set(side_by_side) == {"a", "b"} and all(v > 0 for v in side_by_side.values())
    results = measure_local_many(paths, profile, rounds=2, runs=3, min_time_s=0)
    assert [r.runs for r in results] == [6, 6] and all(r.min_ms > 0 for r in results)
    # by default the rounds go on across the machine's states (at least a second or so),
    # every model timed in each round
    longer = measure_local_many(paths, profile, rounds=1, runs=1, min_time_s=0.2)
    assert longer[0].runs == longer[1].runs > 1
    assert all(r.source == "local" and r.min_ms <= r.median_ms for r in results)
    with pytest.raises(ModelError, match="no such file"):
        measure_local_many([tmp_path / "missing.onnx"], profile, rounds=1, runs=1)
    # models too large to hold open together are timed in groups, every one still measured
    monkeypatch.setattr(latency, "MAX_OPEN_BYTES", paths[0].stat().st_size)
    grouped = measure_local_many(paths, profile, rounds=1, runs=2, min_time_s=0)
    assert [r.runs for r in grouped] == [2, 2]


def test_kernel_features_follow_shapes_through_a_residual_graph(tmp_path):
    from hwcompress.measure.kernels import kernel_features
    from hwcompress.measure.onnx_graph import analyze_onnx

    profile = load_profile("x86_host")
    path = export_fp32(build_builtin("resnet").eval(), (1, 1, 16, 16), tmp_path / "r.onnx")
    f = kernel_features(path, profile)
    conv_macs = sum(v for k, v in f.items() if "_macs" in k and "matmul" not in k) * 1e6
    macs = analyze_onnx(path).macs
    # every convolution's output size is known (padding channels to a block only adds)
    assert macs - 1e4 <= conv_macs <= 2 * macs
    assert f["weights"] * 1e6 >= analyze_onnx(path).params * 0.99


def test_kernel_features_read_integer_convolutions(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    from hwcompress.measure.kernels import kernel_features

    w = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.int8), "w")
    consts = [
        numpy_helper.from_array(np.array(v, dtype=t), n)
        for n, v, t in [
            ("s", 0.1, np.float32),
            ("z", 0, np.uint8),
            ("ws", 0.01, np.float32),
            ("wz", 0, np.int8),
        ]
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node(
            "QLinearConv", ["xq", "s", "z", "w", "ws", "wz", "s", "z"], ["yq"], pads=[1, 1, 1, 1]
        ),
        helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "int8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [w, *consts],
    )
    path = tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    f = kernel_features(path, load_profile("x86_host"))
    convs = {k: v for k, v in f.items() if k.startswith("conv") and k.endswith("_n")}
    assert sum(convs.values()) == 1
    assert sum(v for k, v in f.items() if "_macs" in k) * 1e6 == 8 * 4 * 9 * 64
