"""Hostile inputs: each gets one clear message and a non-zero exit, and runs no code."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

import pytest
import torch

from hwcompress.cli import main
from hwcompress.data.teachers import save_checkpoint
from hwcompress.errors import HwCompressError
from hwcompress.export.student import StudentError, load_student

CODE_TEACHERS = ["os:abort", "builtins:breakpoint", "tests.conftest:TinyNet", "x" * 500 + ":f"]


def _student_ckpt(tmp_path, teacher: str):
    meta = {"genome": {}, "teacher": teacher, "input_shape": [1, 1, 8, 8], "num_classes": 10}
    return save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "student.pt", meta)


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Runs the console script in-process: its exit code and everything it printed."""
    monkeypatch.setattr(sys, "argv", ["hwcompress", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out + out.err


def one_clean_line(output: str) -> bool:
    """One message (rich may wrap it), no traceback."""
    return "Traceback" not in output and output.strip().startswith("error:")


@pytest.fixture
def imports(monkeypatch):
    """Records every module hwcompress imports by name while the test runs."""
    seen: list[str] = []
    real = importlib.import_module

    def spy(name, *args, **kwargs):
        seen.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", spy)
    return seen


@pytest.mark.parametrize("teacher", CODE_TEACHERS)
def test_a_checkpoint_never_names_code_to_run(teacher, tmp_path, imports, monkeypatch, capsys):
    path = _student_ckpt(tmp_path, teacher)
    with pytest.raises(StudentError, match="never imports code named by a file") as info:
        load_student(path)
    assert len(str(info.value)) < 400
    assert teacher.split(":")[0] not in imports
    code, output = cli(monkeypatch, capsys, "export", str(path), "--out", str(tmp_path / "s.onnx"))
    assert code == 2 and one_clean_line(output) and "never imports code" in output
    assert teacher.split(":")[0] not in imports
    assert not (tmp_path / "s.onnx").exists()


def test_a_factory_the_user_names_is_imported(tmp_path, imports):
    # The same checkpoint loads past the check when the caller vouches for the factory
    # (it then fails on its made-up weights, after importing the named module).
    path = _student_ckpt(tmp_path, "tests.conftest:TinyNet")
    with pytest.raises(StudentError, match="cannot rebuild the student"):
        load_student(path, teacher="tests.conftest:TinyNet")
    assert "tests.conftest" in imports


def test_resume_of_a_run_folder_naming_code_needs_the_flag(tmp_path):
    from hwcompress.search import SearchConfig, load_search_config

    out = tmp_path / "run"
    out.mkdir()
    config = SearchConfig(profile="x86_host", teacher="os:abort", out=str(out))
    (out / "config.json").write_text(json.dumps(config.to_dict()))
    with pytest.raises(HwCompressError, match="never imports code"):
        load_search_config(out, {})
    assert load_search_config(out, {"teacher": "os:abort"}).teacher == "os:abort"


BASE_PROFILE = Path(__file__).resolve().parents[1] / "hardware_profiles" / "x86_host.yaml"
HUGE = "9" * 400
BOMB = "name: x\ndescription:\n  - &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  - &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
BAD_PROFILES = {
    "inf_bytes": ("ram_bytes: 24 GiB", "ram_bytes: .inf", "finite"),
    "nan_bandwidth": ("bandwidth_gbps: 35", "bandwidth_gbps: .nan", "bandwidth"),
    "huge_int_bytes": ("ram_bytes: 24 GiB", f"ram_bytes: {HUGE}", "too large"),
    "huge_int_threads": ("threads: 2", f"threads: {HUGE}", "too large"),
    "huge_float_gops": ("fp32: 332.8", f"fp32: {HUGE}.5", "finite"),
    "huge_size_string": ("ram_bytes: 24 GiB", f"ram_bytes: {HUGE} TiB", "finite"),
    "negative_budget": ("budget_ms: 10", "budget_ms: -1", "positive"),
    "zero_threads": ("threads: 2", "threads: 0", "at least 1"),
    "string_threads": ("threads: 2", "threads: two", "expected an integer"),
    "bool_bytes": ("ram_bytes: 24 GiB", "ram_bytes: true", "boolean"),
    "unit_typo": ("ram_bytes: 24 GiB", "ram_bytes: 24 GiBB", "byte size"),
    "unknown_key": ("runtime:", "runtimes:", "unknown key"),
    "long_unknown_key": ("runtime:", "r" * 1000 + ":", "unknown key"),
    "yaml_syntax": ("runtime:", "runtime: [", "not valid YAML"),
    "yaml_long_key": ("runtime:", "r" * 5000 + ":", "not valid YAML"),
    "yaml_tab": ("runtime:", "\truntime:", "not valid YAML"),
    "python_tag": ("runtime:", "x: !!python/object/apply:os.system [echo hi]\nruntime:", "YAML"),
    "unknown_precision": ("fp32: 332.8", "fp64: 332.8", "unknown precision"),
    "unknown_bits": ("activation: [32, 8]", "activation: [32, 9]", "unknown bit-width"),
    "empty_bits": ("activation: [32, 8]", "activation: []", "at least one"),
    "unknown_source": ("source: local", "source: magic", "latency source"),
    "list_description": ("description: This host", "description: [1, 2]\nx: This host", ""),
    "long_description_list": ("description: This host", f"description: [{HUGE}]\nx: ", ""),
}
CONSTRAINT = "constraints:\n  - name: c\n    coeffs: {{{coeffs}}}\n    bound: {bound}\n"
BAD_CONSTRAINTS = {
    "negative_bound": ("latency_ms: 1", "-1", "positive"),
    "zero_bound": ("latency_ms: 1", "0", "positive"),
    "nan_coeff": ("latency_ms: .nan", "5", "finite"),
    "inf_bound": ("latency_ms: 1", ".inf", "finite"),
    "unknown_metric": ("flops: 1", "5", "unknown metric"),
    "no_coeffs": ("", "5", "at least one coefficient"),
}


def _profile(tmp_path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _assert_clean(monkeypatch, capsys, path: Path, *words: str) -> str:
    code, output = cli(monkeypatch, capsys, "profile", "show", str(path))
    assert code == 2, output
    assert one_clean_line(output), output
    assert len(output) < 600, output[:600]
    for word in words:
        assert word in output, output
    return output


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_bad_profile_values(case, tmp_path, monkeypatch, capsys):
    old, new, word = BAD_PROFILES[case]
    text = BASE_PROFILE.read_text()
    assert old in text
    _assert_clean(monkeypatch, capsys, _profile(tmp_path, text.replace(old, new, 1)), word)


@pytest.mark.parametrize("case", sorted(BAD_CONSTRAINTS))
def test_bad_constraint_rows(case, tmp_path, monkeypatch, capsys):
    coeffs, bound, word = BAD_CONSTRAINTS[case]
    text = BASE_PROFILE.read_text() + CONSTRAINT.format(coeffs=coeffs, bound=bound)
    _assert_clean(monkeypatch, capsys, _profile(tmp_path, text), word)


def test_negative_coefficients_may_have_a_negative_bound(tmp_path, monkeypatch, capsys):
    text = BASE_PROFILE.read_text() + CONSTRAINT.format(
        coeffs="latency_ms: 1, macs: -1", bound="-1"
    )
    code, output = cli(monkeypatch, capsys, "profile", "show", str(_profile(tmp_path, text)))
    assert code == 0, output


def test_yaml_alias_bomb_is_refused_quickly(tmp_path, monkeypatch, capsys):
    # 9**9 strings if expanded: the loader must neither expand nor print it.
    start = time.perf_counter()
    _assert_clean(monkeypatch, capsys, _profile(tmp_path, BOMB), "expected a string")
    assert time.perf_counter() - start < 30


def _relu_onnx(path: Path, shape: list[int]) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _bad_onnx(tmp_path: Path, case: str) -> str:
    path = tmp_path / "m.onnx"
    if case == "huge_input":
        _relu_onnx(path, [1, 1, 200000, 200000])
    elif case == "text":
        path.write_text("not a model\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        data = _relu_onnx(tmp_path / "ok.onnx", [1, 3, 8, 8]).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "random_bytes":
        path.write_bytes(bytes(range(256)) * 8)
    elif case == "directory":
        path.mkdir()
    elif case == "missing":
        pass
    return str(path)


@pytest.mark.onnx
@pytest.mark.parametrize(
    "case", ["huge_input", "text", "empty", "truncated", "random_bytes", "directory", "missing"]
)
def test_bad_onnx_files_in_bench(case, tmp_path, monkeypatch, capsys):
    model = _bad_onnx(tmp_path, case)
    code, output = cli(monkeypatch, capsys, "bench", model, "--profile", "x86_host")
    assert code == 2 and one_clean_line(output), output
    assert len(output) < 600, output


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "builtin:vgg", "-p", "x86_host", "--input-shape", "a,b"],
        ["bench", "builtin:vgg", "-p", "x86_host", "--input-shape", "0,1,8,8"],
        ["bench", "builtin:vgg", "-p", "x86_host", "--input-shape", "1,1,99999,99999"],
        ["bench", "builtin:nope", "-p", "x86_host"],
        ["bench", "builtin:vgg", "-p", "no_such_profile"],
        ["profile", "show", "no_such_profile"],
        ["search", "--profile", "x86_host", "--teacher", "nope"],
        ["search", "--profile", "x86_host", "--dataset", "imagenet22k"],
        ["search", "--profile", "x86_host", "--stages", ","],
        ["search", "--profile", "x86_host", "--target", "params=-3x"],
        ["search", "--profile", "x86_host", "--target", "bogus"],
        ["search", "--profile", "x86_host", "--seeds", "x"],
    ],
)
def test_bad_options(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, output = cli(monkeypatch, capsys, *args)
    assert code == 2, output
    assert "Traceback" not in output and len(output) < 1200, output
    assert not (tmp_path / "runs").exists(), "a failed start leaves nothing behind"


# -- search options, run folders and files a search reads --------------------------------

BAD_SEARCH_OPTIONS = {
    "infinite_budget": (["--budget-minutes", "inf"], "positive number of minutes"),
    "stage_twice": (["--stages", "removal,removal"], "more than once"),
    "stages_backwards": (["--stages", "shrinkage,removal"], "in the order"),
    "thousands_of_workers": (["--executor", "process", "--workers", "100000"], "at most"),
    "unknown_executor": (["--executor", "threads"], "--executor must be one of"),
    "unknown_method": (["--method", "evolution"], "unknown method"),
    "unknown_size_metric": (["--size-metric", "flops"], "--size-metric"),
    "unknown_constraint_mode": (["--constraint-mode", "maybe"], "--constraint-mode"),
    "student_without_quantization": (["--student", "x.pt"], "only be quantized"),
    "missing_init_policy": (["--init-policy", "missing.pt"], "no such file"),
    "text_init_policy": (["--init-policy", "text.pt"], "it is a text file"),
    "missing_teacher_weights": (["--teacher-weights", "missing.pt"], "no such checkpoint"),
    "text_teacher_weights": (["--teacher-weights", "text.pt"], "it is a text file"),
    "empty_teacher_weights": (["--teacher-weights", "empty.pt"], "the file is empty"),
    "resume_without_a_run": (["--resume"], "holds no run"),
    "out_is_a_file": (["--out", "text.pt"], "is a file"),
    "target_zero_reduction": (["--target", "params=0x"], "reduction factor"),
    "target_negative_latency": (["--target", "latency_ms=-1"], "cannot read"),
    "missing_dataset_folder": (["--dataset", "imagefolder:nowhere"], "is not a folder"),
    "missing_torchvision_files": (
        ["--dataset", "fashion_mnist", "--data-dir", "nowhere"],
        "Expected nowhere/FashionMNIST",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SEARCH_OPTIONS))
def test_bad_search_options(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("text.pt").write_text("hello\n")
    Path("empty.pt").write_bytes(b"")
    args, words = BAD_SEARCH_OPTIONS[case]
    if "--out" not in args:
        args = [*args, "--out", "run"]
    code, output = cli(monkeypatch, capsys, "search", "--profile", "x86_host", *args)
    assert code == 2 and one_clean_line(output), output
    assert words in " ".join(output.split()), output
    assert not Path("run").exists() and not Path("runs").exists(), "a failed start leaves nothing"


def _stored_config(tmp_path: Path) -> dict:
    from hwcompress.search import SearchConfig

    return SearchConfig(profile="x86_host", out=str(tmp_path / "run")).to_dict()


BAD_RUN_CONFIGS = {
    "not_json": lambda c: b"{oops",
    "empty": lambda c: b"",
    "a_list": lambda c: b"[1, 2]",
    "null": lambda c: b"null",
    "binary": lambda c: bytes(range(256)),
    "truncated": lambda c: json.dumps(c).encode()[:200],
    "unknown_setting": lambda c: json.dumps({**c, "warp_speed": 9}).encode(),
    "wrong_type": lambda c: json.dumps({**c, "episodes": "many"}).encode(),
    "negative_rollouts": lambda c: json.dumps({**c, "rollouts": -4}).encode(),
    "unknown_stage": lambda c: json.dumps({**c, "stages": ["teleport"]}).encode(),
}


@pytest.mark.parametrize("case", sorted(BAD_RUN_CONFIGS))
def test_resume_of_a_corrupt_config(case, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    stored = BAD_RUN_CONFIGS[case](_stored_config(tmp_path))
    (run / "config.json").write_bytes(stored)
    (run / "journal.jsonl").write_text('{"type": "episode"}\n')
    code, output = cli(
        monkeypatch, capsys, "search", "--profile", "x86_host", "--resume", "--out", str(run)
    )
    assert code == 2 and one_clean_line(output), output
    assert "config.json" in output and len(output) < 800, output
    # nothing already computed is touched
    assert (run / "config.json").read_bytes() == stored
    assert (run / "journal.jsonl").read_text() == '{"type": "episode"}\n'


def _png(path: Path, colour: int = 0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (colour, colour, colour)).save(path)


def _image_folder(root: Path, case: str) -> Path:
    for cls in ("cat", "dog"):
        for i in range(3):
            _png(root / cls / f"{i}.png", 40 * i)
    if case == "one_class":
        import shutil

        shutil.rmtree(root / "dog")
    elif case == "corrupt_png":
        (root / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    elif case == "text_as_png":
        (root / "cat" / "2.png").write_text("not an image")
    elif case == "empty_png":
        (root / "cat" / "0.png").write_bytes(b"")
    elif case == "truncated_png":
        data = (root / "dog" / "0.png").read_bytes()
        (root / "dog" / "0.png").write_bytes(data[: len(data) // 2])
    elif case == "class_without_images":
        (root / "bird").mkdir()
    elif case == "no_classes":
        import shutil

        for cls in ("cat", "dog"):
            shutil.rmtree(root / cls)
    elif case == "train_test_differ":
        for split, classes in (("train", ("cat", "dog")), ("test", ("cat", "dog", "eel"))):
            for cls in classes:
                _png(root / split / cls / "0.png")
    return root


BAD_IMAGE_FOLDERS = {
    "one_class": "at least two",
    "corrupt_png": "dog/1.png",
    "text_as_png": "cat/2.png",
    "empty_png": "cat/0.png",
    "truncated_png": "dog/0.png",
    "class_without_images": "cannot read",
    "no_classes": "cannot read",
    "train_test_differ": "different classes",
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGE_FOLDERS))
def test_bad_image_folders(case, tmp_path, monkeypatch, capsys):
    root = _image_folder(tmp_path / "images", case)
    code, output = cli(
        monkeypatch,
        capsys,
        "search",
        "--profile",
        "x86_host",
        "--dataset",
        f"imagefolder:{root}",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 2 and one_clean_line(output), output
    assert BAD_IMAGE_FOLDERS[case] in " ".join(output.split()).replace(f"{root}/", ""), output
    assert not (tmp_path / "run").exists()


BAD_CHECKPOINTS = {
    "text": lambda p: p.write_text("hello world\n"),
    "empty": lambda p: p.write_bytes(b""),
    "random_bytes": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "damaged_archive": lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 60),
    "truncated": lambda p: p.write_bytes(_real_checkpoint(p)[:300]),
    "directory": lambda p: p.mkdir(),
}


def _real_checkpoint(p: Path) -> bytes:
    tmp = p.with_suffix(".ok")
    torch.save({"state_dict": torch.nn.Linear(30, 30).state_dict()}, tmp)
    return tmp.read_bytes()


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoints_in_export(case, tmp_path, monkeypatch, capsys):
    path = tmp_path / "student.pt"
    BAD_CHECKPOINTS[case](path)
    code, output = cli(monkeypatch, capsys, "export", str(path), "--out", str(tmp_path / "s.onnx"))
    assert code == 2 and one_clean_line(output), output
    assert "(101)" not in output and len(output) < 600, output
    assert not (tmp_path / "s.onnx").exists()
