"""The CUDA path end to end, as a user runs it: teacher training, a short search, an int8 export.

For the day a task is lent a GPU machine: one command, under five minutes on one GPU, that
drives the command line (``hwcompress teacher train``, ``hwcompress search``, ``hwcompress
export``) with ``--device cuda`` on the built-in digits data (no files, no downloads) and
writes what each step took and what it produced to
``benchmarks/results/gpu_check_<device>.md`` (and ``.json``). Teacher training, distillation
and QAT run on the GPU; export and latency stay with onnxruntime on the CPU, as always. The
teacher cache is a fresh folder, so the teacher really trains on the device.

Exits non-zero when a step fails; on a machine without a GPU, ``--device cuda`` fails at the
first step with the tool's own message (the check is meant for a GPU machine). ``--device
cpu`` runs the same path on the CPU, for comparison.

Usage: python benchmarks/gpu_check.py [--device cuda] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _device_name(device: str) -> str:
    try:
        import torch
    except ImportError:
        return "torch not importable"
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    if device.startswith("cuda"):
        return f"no CUDA device visible to torch {torch.__version__}"
    return f"CPU, {os.cpu_count()} cores (torch {torch.__version__})"


def _step(name: str, argv: list[str], env: dict[str, str], log: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log.write_text(f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] if proc.returncode else []
    print(f"{name}: exit {proc.returncode} in {wall:.1f} s", flush=True)
    return {"step": name, "exit": proc.returncode, "s": wall, "error": " ".join(tail)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwc-gpu-check-"))
    env = {**os.environ, "HWCOMPRESS_CACHE": str(work / "cache")}
    cli = [sys.executable, "-m", "hwcompress"]
    teacher = work / "teacher.pt"
    run = work / "run"
    steps = [
        (
            "teacher train",
            [*cli, "teacher", "train", "--dataset", "digits", "--epochs",
             str(args.teacher_epochs), "--out", str(teacher), "--device", args.device],
        ),
        (
            "search (2 episodes × 3 rollouts per stage, QAT stage)",
            [*cli, "search", "--profile", "jetson_nano", "--dataset", "digits",
             "--teacher-weights", str(teacher), "--episodes", "2", "--rollouts", "3",
             "--distill-epochs", "2", "--final-epochs", "3", "--promote-epochs", "0",
             "--out", str(run), "--device", args.device],
        ),
        (
            "export int8 (qcdq) + onnxruntime check",
            [*cli, "export", str(run), "--format", "qcdq", "--out", str(work / "student.onnx"),
             "--json", str(work / "export.json")],
        ),
    ]  # fmt: skip
    rows = []
    for i, (name, argv) in enumerate(steps):
        rows.append(_step(name, argv, env, work / f"step{i}.log"))
        if rows[-1]["exit"]:
            break
    figures: dict = {}
    results = run / "results.json"
    if results.is_file():
        summary = json.loads(results.read_text()).get("summary", {})
        figures["summary"] = summary
    if (work / "export.json").is_file():
        export = json.loads((work / "export.json").read_text())
        figures["export"] = {
            k: export.get(k) for k in ("format", "integer_kernels", "dequantize_left", "parity")
        }
    ok = all(r["exit"] == 0 for r in rows) and len(rows) == len(steps)
    name = _device_name(args.device)
    lines = [
        f"# GPU check: the `--device {args.device}` path end to end",
        "",
        f"Machine: {platform.machine()}, {name}. Built-in digits data; teacher `builtin:vgg` "
        f"{args.teacher_epochs} epochs; search on profile jetson_nano; export as integer ONNX "
        "(latency and export always run in onnxruntime on the CPU). "
        f"Run {time.strftime('%Y-%m-%d %H:%M')}: **{'passed' if ok else 'FAILED'}**.",
        "",
        "| step | exit | seconds | error |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {r['step']} | {r['exit']} | {r['s']:.1f} | {r['error']} |" for r in rows]
    if figures.get("summary"):
        lines += ["", "results.json `summary`:", "", "```json"]
        lines += [json.dumps(figures["summary"], indent=1), "```"]
    if figures.get("export"):
        lines += ["", f"Export: `{json.dumps(figures['export'])}`"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"gpu_check_{args.device.replace(':', '')}"
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(
        json.dumps({"device": name, "ok": ok, "steps": rows, **figures}, indent=1)
    )
    print("\n".join(lines))
    print(f"logs of every step: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
