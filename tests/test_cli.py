"""The command line, run through its real entry point."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from hwcompress.cli import app, main
from hwcompress.export import export_fp32

runner = CliRunner()


def run_main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["hwcompress", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_profile_list_and_show():
    result = runner.invoke(app, ["profile", "list"])
    assert result.exit_code == 0
    assert "stm32h7" in result.output and "jetson_orin_nano" in result.output
    result = runner.invoke(app, ["profile", "show", "stm32h7"])
    assert result.exit_code == 0
    assert "weights_fit_storage" in result.output and "roofline" in result.output


@pytest.mark.onnx
def test_bench_real_model_writes_json(tiny_net, tmp_path):
    model = export_fp32(tiny_net, (1, 1, 8, 8), tmp_path / "tiny.onnx")
    out = tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            "bench",
            str(model),
            "--profile",
            "x86_host",
            "--runs",
            "10",
            "--warmup",
            "1",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "FITS" in result.output
    report = json.loads(out.read_text())
    assert report["static"]["macs"] == 2304 + 640  # conv + linear; bn folded, pools free
    assert report["latency"]["runs"] >= 10
    assert report["fits"] is True
    assert {r["name"] for r in report["constraints"]} >= {"latency_budget", "weights_fit_storage"}


@pytest.mark.onnx
def test_bench_reports_violations(tiny_net, tmp_path, profile_data, write_profile):
    model = export_fp32(tiny_net, (1, 1, 8, 8), tmp_path / "tiny.onnx")
    profile_data["budgets"]["weight_bytes"] = 100
    result = runner.invoke(
        app, ["bench", str(model), "--profile", str(write_profile(profile_data)), "--runs", "3"]
    )
    assert result.exit_code == 1  # a script can tell it does not fit
    assert "VIOLATES" in result.output and "weights_fit_storage" in result.output


@pytest.mark.parametrize(
    "args,words",
    [
        (["bench", "missing.onnx", "--profile", "x86_host"], "no such file"),
        (["bench", "{bad}", "--profile", "x86_host"], "not a valid ONNX model"),
        (["bench", "{good}", "--profile", "no_such_board"], "no profile file"),
        (["bench", "{good}", "--profile", "{badprofile}"], "unknown key"),
        (["bench", "builtin:nope", "--profile", "x86_host"], "unknown built-in model"),
    ],
)
def test_bad_input_is_one_red_line_and_exit_2(monkeypatch, capsys, tmp_path, tiny_net, args, words):
    bad = tmp_path / "bad.onnx"
    bad.write_text("junk")
    good = export_fp32(tiny_net, (1, 1, 8, 8), tmp_path / "good.onnx")
    badprofile = tmp_path / "p.yaml"
    badprofile.write_text("name: x\nspeed: 3\n")
    args = [a.format(bad=bad, good=good, badprofile=badprofile) for a in args]
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert words in err
    assert "Traceback" not in err + out
    assert err.strip().startswith("error:")


def test_bad_option_value_exits_2(monkeypatch, capsys):
    code, _, err = run_main(
        monkeypatch, capsys, "bench", "x.onnx", "--profile", "x86_host", "--runs", "0"
    )
    assert code == 2
    assert "--runs" in err


def test_teacher_train_writes_a_safe_checkpoint(tmp_path):
    from hwcompress.data.teachers import load_checkpoint

    out = tmp_path / "teacher.pt"
    result = runner.invoke(
        app, ["teacher", "train", "--teacher", "builtin:resnet", "--epochs", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out)["meta"]
    assert meta["spec"] == "builtin:resnet" and 0 <= meta["accuracy"]["test"] <= 1


def test_teacher_train_missing_dataset_folder(monkeypatch, capsys, tmp_path):
    code, _, err = run_main(
        monkeypatch, capsys, "teacher", "train", "--dataset", "cifar10", "--data-dir", str(tmp_path)
    )
    assert code == 2 and "--download" in err and "Traceback" not in err


def test_search_command_end_to_end_and_resume_conflict(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HWCOMPRESS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = [
        "search",
        "--profile",
        "jetson_nano.yaml",
        "--episodes",
        "1",
        "--rollouts",
        "2",
        "--distill-epochs",
        "1",
        "--train-limit",
        "200",
        "--seeds",
        "4,16",
        "--target",
        "params=4x",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Teacher vs best student" in result.output and "slack latency_budget" in result.output
    assert "slack target_params" in result.output and "product from" in result.output
    text = " ".join(result.output.split())
    assert "fewer parameters" in text and "points on test" in text
    assert "student_int8.onnx" in text  # how to export it as int8
    assert (out / "results.json").is_file()
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and "--resume" in err
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "search",
        "--profile",
        "jetson_nano",
        "--out",
        str(out),
        "--resume",
        "--episodes",
        "9",
    )
    assert code == 2 and "episodes" in err


def test_search_bad_options(monkeypatch, capsys, tmp_path):
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "search",
        "--profile",
        "x86_host",
        "--method",
        "genetic",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 2 and "unknown method" in err
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "search",
        "--profile",
        "x86_host",
        "--stages",
        "removal,pruning",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 2 and "'pruning' is not a stage of --method n2n" in err
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "search",
        "--profile",
        "x86_host",
        "--out",
        str(tmp_path / "none"),
        "--resume",
    )
    assert code == 2 and "holds no run" in err
    for option, value, words in (
        ("--target", "flops=3x", "name one of"),
        ("--target", "params=0.5x", "≥ 1"),
        ("--seeds", "four", "--seeds"),
        ("--seeds", "0.5", "--seeds: give reduction factors"),
    ):
        code, out, err = run_main(
            monkeypatch,
            capsys,
            "search",
            "--profile",
            "x86_host",
            option,
            value,
            "--out",
            str(tmp_path / "t"),
        )
        assert code == 2 and words in err and "Traceback" not in err + out, err
        assert not (tmp_path / "t" / "config.json").exists()


def test_bench_holds_bit_widths_to_the_device(tiny_net, tmp_path):
    import torch

    from hwcompress.quant.convert import calibrate, quantize_model
    from hwcompress.quant.export import export_qcdq

    fp32 = export_fp32(tiny_net, (1, 1, 8, 8), tmp_path / "fp32.onnx")
    out = tmp_path / "fp32.json"
    result = runner.invoke(app, ["bench", str(fp32), "--profile", "stm32h7", "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert "VIOLATES bit_widths_supported" in " ".join(result.output.split())
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["constraints"]}
    assert rows["bit_widths_supported"]["value"] == 2  # the conv and the linear layer
    # the roofline source's estimate is the roofline floor: they cannot contradict each other
    assert report["roofline"]["precision"] == "fp32"
    assert report["latency"]["median_ms"] == report["roofline"]["floor_ms"]

    q = quantize_model(tiny_net, default_act_bits=8)
    calibrate(q, [(torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long))])
    int8 = export_qcdq(q, (1, 1, 8, 8), tmp_path / "int8.onnx")
    result = runner.invoke(app, ["bench", str(int8), "--profile", "stm32h7", "--json", str(out)])
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["constraints"]}
    assert rows["bit_widths_supported"]["ok"] is True, result.output
    assert report["roofline"]["precision"] == "int8"
    assert report["static"]["weight_bit_widths"] == [8, 8]


def test_version_and_short_help():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"hwcompress {version('hwcompress')}"
    for args in (["-h"], ["search", "-h"], ["profile", "-h"], ["export", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output
