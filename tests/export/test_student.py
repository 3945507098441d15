"""Exporting searched students: run folders and checkpoints → fp32 or integer ONNX."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest
import torch

from hwcompress.cli import main
from hwcompress.data import DataConfig, load_data
from hwcompress.export.student import StudentError, export_student, load_student
from hwcompress.search import SearchConfig, run_search

pytestmark = pytest.mark.onnx


@pytest.fixture(scope="module")
def run(teacher_cache, tmp_path_factory):
    """A tiny removal → quantization search: a float candidate and a quantized best."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWCOMPRESS_CACHE", str(teacher_cache))
        result = run_search(
            SearchConfig(
                profile="x86_host",
                stages=("removal", "quantization"),
                episodes=1,
                rollouts=2,
                distill_epochs=1,
                train_limit=300,
                latency_runs=5,
                out=str(tmp_path_factory.mktemp("export") / "run"),
            )
        )
    assert result.best is not None and result.best.stage == "quantization", [
        (c.stage, c.status, c.reason, c.metrics.get("val_accuracy"), c.reward)
        for c in result.candidates
    ]
    return result


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig())


def _float_candidate(run):
    cand = next(c for c in run.candidates if c.stage == "removal" and c.status == "ok")
    return run.out / cand.artifacts["weights"]


def test_quantized_best_exports_integer_onnx_with_parity(run, data, tmp_path):
    student = load_student(run.out)  # the run folder names its best student
    assert student.quantized
    report = export_student(student, "qcdq", tmp_path / "s.onnx", data)
    assert report.path.is_file() and not list(tmp_path.glob("*.partial.onnx"))
    assert report.quantized_by == "qat"
    assert report.parity is not None and report.parity >= 0.99
    assert any(k.endswith("QLinearConv") for k in report.integer_kernels)
    assert report.float_compute_kernels == {}
    graph = onnx.load(str(report.path)).graph
    assert not {i.name for i in graph.input} & {i.name for i in graph.initializer}
    # the exported model computes what the rebuilt student computes
    import onnxruntime as ort

    x = data.val.dataset.tensors[0][:64]
    sess = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0].argmax(1)
    with torch.no_grad():
        ref = student.model(x).argmax(1).numpy()
    assert (got == ref).mean() >= 0.95


def test_float_student_exports_fp32_and_int8(run, data, tmp_path):
    student = load_student(_float_candidate(run))
    assert not student.quantized
    fp32 = export_student(student, "onnx", tmp_path / "f.onnx", data)
    assert fp32.integer_kernels == {} and fp32.float_compute_kernels
    int8 = export_student(student, "qcdq", tmp_path / "q.onnx", data)
    assert int8.quantized_by == "ptq-int8" and int8.integer_kernels
    assert int8.parity >= 0.99
    assert int8.weight_bytes < fp32.weight_bytes / 3  # int8 weights, int32 biases


def test_quantized_student_refuses_float_onnx_and_keeps_earlier_file(run, tmp_path):
    out = tmp_path / "keep.onnx"
    out.write_bytes(b"earlier")
    with pytest.raises(StudentError, match="--format qcdq"):
        export_student(load_student(run.out), "onnx", out)
    assert out.read_bytes() == b"earlier"
    with pytest.raises(StudentError, match="unknown format"):
        export_student(load_student(run.out), "tflite", out)


def _cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["hwcompress", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_export_command(run, monkeypatch, capsys, tmp_path):
    code, out, err = _cli(
        monkeypatch,
        capsys,
        "export",
        str(run.out),
        "--out",
        str(tmp_path / "m.onnx"),
        "--json",
        str(tmp_path / "m.json"),
    )
    assert code == 0, err
    assert "QLinearConv" in out and "agreement" in out
    assert json.loads((tmp_path / "m.json").read_text())["parity"] >= 0.99


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: tmp / "missing", "no such file or folder"),
        (lambda tmp: tmp, "not a search run folder"),
        (lambda tmp: (tmp / "junk.pt").write_bytes(b"junk") and tmp / "junk.pt", "not a PyTorch"),
        (
            lambda tmp: torch.save({"w": torch.zeros(1)}, tmp / "sd.pt") or tmp / "sd.pt",
            "not a hwcompress student checkpoint",
        ),
    ],
)
def test_bad_sources_are_one_clear_line(monkeypatch, capsys, tmp_path, make, words):
    code, _, err = _cli(monkeypatch, capsys, "export", str(make(tmp_path)), "--out", "x.onnx")
    assert code == 2 and words in err and "Traceback" not in err


def test_search_quantizes_a_given_float_student(run, tmp_path, monkeypatch, teacher_cache):
    from hwcompress.errors import HwCompressError

    monkeypatch.setenv("HWCOMPRESS_CACHE", str(teacher_cache))
    path = _float_candidate(run)
    float_genome = load_student(path).meta["genome"]
    settings = dict(
        profile="stm32h7",
        episodes=1,
        rollouts=1,
        distill_epochs=1,
        train_limit=300,
        latency_runs=5,
        stages=("quantization",),
        student=str(path),
        out=str(tmp_path / "q"),
    )
    result = run_search(SearchConfig(**settings))
    (cand,) = [c for c in result.candidates if c.method != "baseline"]
    seeds = [c for c in result.candidates if c.method == "baseline"]
    assert sorted(c.label for c in seeds) == ["uniform int4", "uniform int8"]
    assert all(c.genome["keep"] == float_genome["keep"] for c in seeds)
    assert cand.status == "ok", cand.reason
    assert cand.genome["keep"] == float_genome["keep"]
    assert set(cand.genome["weight_bits"].values()) <= {4, 8}  # the MCU's integer widths
    with pytest.raises(HwCompressError, match="only be quantized"):
        SearchConfig(**{**settings, "stages": ("removal", "quantization")})
    with pytest.raises(HwCompressError, match="already quantized"):
        run_search(
            SearchConfig(**{**settings, "student": str(run.out), "out": str(tmp_path / "r")})
        )


def test_export_format_follows_the_device(tiny_net):
    from hwcompress.export.student import LoadedStudent, default_format

    def student(**meta):
        return LoadedStudent(tiny_net, {"input_shape": [1, 1, 8, 8], **meta}, Path("s.pt"))

    # a Jetson Nano has no int8 kernels: its float student ships as fp32 ONNX
    assert default_format(student(profile="jetson_nano"))[0] == "onnx"
    assert default_format(student(profile="raspberry_pi5"))[0] == "qcdq"
    assert default_format(student(profile="jetson_nano", quantized=True))[0] == "qcdq"
    assert default_format(student())[0] == "qcdq"  # runs that did not record their device


def test_a_float_only_run_on_an_integer_device_is_refused(tiny_search):
    from hwcompress.errors import HwCompressError
    from hwcompress.search import SearchConfig, run_search

    with pytest.raises(
        HwCompressError,
        match=r"add the quantization stage to stages \(e.g. removal,shrinkage,quantization\)",
    ):
        run_search(SearchConfig(**{**tiny_search, "profile": "stm32h7"}))
