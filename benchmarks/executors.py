"""Candidates per minute: serial vs local worker processes vs a local Ray instance.

Runs the same search (same seed, so the same candidates) with each executor and writes the
throughput to ``benchmarks/results/executors_<dataset>.md``. Latency is measured in the driver
one model at a time in every case; only training runs in parallel.

Usage: python benchmarks/executors.py [--workers 2] [--episodes 3] [--rollouts 4]
       [--distill-epochs 2] [--train-limit 1000] [--executors serial,process,ray]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from hwcompress.search import SearchConfig, run_search

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--distill-epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=1000)
    parser.add_argument("--executors", default="serial,process,ray")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hwc-exec-"))
    rows = []
    for name in args.executors.split(","):
        cfg = SearchConfig(
            profile="x86_host",
            dataset=args.dataset,
            data_dir=args.data_dir,
            episodes=args.episodes,
            rollouts=args.rollouts,
            distill_epochs=args.distill_epochs,
            train_limit=args.train_limit,
            executor=name,
            workers=args.workers,
            out=str(workdir / name),
        )
        t0 = time.perf_counter()
        result = run_search(cfg)
        wall = time.perf_counter() - t0
        n = len(result.candidates)
        ok = sum(c.status == "ok" for c in result.candidates)
        rows.append((name, n, ok, wall, n / wall * 60, result.best.reward if result.best else None))
        print(rows[-1], flush=True)
    serial = next((r for r in rows if r[0] == "serial"), None)
    out = args.out or RESULTS / f"executors_{args.dataset}.md"
    lines = [
        f"# Executors: candidates per minute — {args.dataset}",
        "",
        f"Search `builtin:vgg` on {args.dataset} ({args.train_limit} training samples), "
        f"{args.episodes} episodes × {args.rollouts} rollouts per stage (removal, shrinkage), "
        f"{args.distill_epochs} distillation epochs per candidate, seed 0; process and Ray with "
        f"{args.workers} workers, torch threads shared out ({os.cpu_count()} cores). Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, CPU only. Wall time includes start-up "
        "(teacher from the cache, teacher measurement, worker start).",
        "",
        "| executor | candidates | ok | wall | candidates / min | speed-up | best reward |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, ok, wall, cpm, best in rows:
        speed = f"{cpm / serial[4]:.2f}×" if serial else "—"
        lines.append(
            f"| {name} | {n} | {ok} | {wall:.1f} s | {cpm:.1f} | {speed} | {best:.4f} |"
            if best is not None
            else f"| {name} | {n} | {ok} | {wall:.1f} s | {cpm:.1f} | {speed} | — |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
