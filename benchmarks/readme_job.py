"""The README's main job, as a user runs it, over several seeds.

Runs ``hwcompress search --profile jetson_nano.yaml --seed S`` as a subprocess (defaults
otherwise, teacher already cached) and reports the product's compression, its test accuracy
against the teacher's, where it came from and the wall time. Writes
``benchmarks/results/readme_job_digits.md``.

Usage: python benchmarks/readme_job.py [--seeds 0,1,2,3,4] [--extra "--final-epochs 20"]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--profile", default="jetson_nano.yaml")
    parser.add_argument("--extra", default="", help="more search options")
    parser.add_argument("--out", type=Path, default=RESULTS / "readme_job_digits.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwc-readme-"))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        run = work / f"s{seed}"
        cmd = [
            "hwcompress",
            "search",
            "--profile",
            args.profile,
            "--seed",
            str(seed),
            "--out",
            str(run),
            *shlex.split(args.extra),
        ]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        r = json.loads((run / "results.json").read_text())
        best, teacher = r["best"], r["teacher"]
        rows.append(
            {
                "seed": seed,
                "compression": best["metrics"]["compression"],
                "params": best["metrics"]["params"],
                "test": best["test_accuracy"],
                "teacher_test": teacher["test_accuracy"],
                "val": best["metrics"]["val_accuracy"],
                "teacher_val": teacher["val_accuracy"],
                "from": f"{best['stage']}/{best['method']}"
                + (f" ({best['label']})" if best.get("label") else ""),
                "removed": sum(1 for v in best["genome"]["keep"].values() if not v),
                "candidates": len(r["candidates"]),
                "wall": wall,
            }
        )
        print(rows[-1], flush=True)
    cmd_text = f"hwcompress search --profile {args.profile} --seed S {args.extra}".strip()
    lines = [
        "# The README's main job on digits",
        "",
        f"`{cmd_text}`, teacher cached. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        "CPU only (shared VM).",
        "",
        "| seed | compression | params | val (teacher) | test (teacher) | Δ test (points) "
        "| product from | units removed | candidates | wall |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['compression']:.1f}× | {r['params']:,.0f} | {r['val']:.2%} "
            f"({r['teacher_val']:.2%}) | {r['test']:.2%} ({r['teacher_test']:.2%}) | "
            f"{100 * (r['test'] - r['teacher_test']):+.2f} | {r['from']} | {r['removed']} | "
            f"{r['candidates']} | {r['wall']:.0f} s |"
        )
    deltas = [100 * (r["test"] - r["teacher_test"]) for r in rows]
    lines += [
        "",
        f"Mean: {statistics.mean(r['compression'] for r in rows):.1f}× fewer parameters "
        f"(min {min(r['compression'] for r in rows):.1f}×), Δ test {statistics.mean(deltas):+.2f} "
        f"points (worst {min(deltas):+.2f}), wall {statistics.mean(r['wall'] for r in rows):.0f} s "
        f"(max {max(r['wall'] for r in rows):.0f} s).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
