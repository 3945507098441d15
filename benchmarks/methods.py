"""N2N, drl-prune and random search under the same candidate budget.

Each method runs a full search on the built-in VGG teacher with the same data, distillation
and profile, and the same number of evaluated candidates: N2N and random search spend
``--episodes`` × ``--rollouts`` on removal and again on shrinkage; drl-prune spends its share
on the DDPG channel stage and on the kernel stage (one candidate per KL weight). The
quantization stage is left out so that the three compare as pruning methods. The table
reports each run's product (``results.json``'s best student): parameters, MACs, weight
bytes, onnxruntime latency, validation and test accuracy, and wall time. Writes
``benchmarks/results/methods_<dataset>.md``.

Usage: python benchmarks/methods.py [--dataset fashion_mnist] [--data-dir DIR]
       [--teacher-weights FILE] [--episodes 2] [--rollouts 4] [--train-limit N]
       [--distill-epochs E] [--flops-target 0.5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from hwcompress.search import SearchConfig, run_search

RESULTS = Path(__file__).parent / "results"


def configs(args: argparse.Namespace, workdir: Path) -> list[tuple[str, SearchConfig]]:
    """One search config per method, with equal candidate budgets."""
    common = dict(
        profile=args.profile,
        dataset=args.dataset,
        data_dir=args.data_dir,
        teacher_weights=args.teacher_weights,
        rollouts=args.rollouts,
        distill_epochs=args.distill_epochs,
        train_limit=args.train_limit,
        seed=args.seed,
    )
    budget = 2 * args.episodes * args.rollouts
    betas = tuple(float(b) for b in args.kernel_betas.split(","))
    channel_episodes = max(1, (budget - len(betas)) // args.rollouts)
    return [
        (
            "n2n",
            SearchConfig(**common, method="n2n", episodes=args.episodes, out=str(workdir / "n2n")),
        ),
        (
            "drl-prune",
            SearchConfig(
                **common,
                method="drl-prune",
                stages=("channels", "kernels"),
                episodes=channel_episodes,
                flops_target=args.flops_target,
                kernel_betas=betas,
                kernel_steps=args.kernel_steps,
                out=str(workdir / "drl-prune"),
            ),
        ),
        (
            "random",
            SearchConfig(
                **common, method="random", episodes=args.episodes, out=str(workdir / "random")
            ),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument(
        "--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR", "../shared/datasets")
    )
    parser.add_argument("--teacher-weights", default=None)
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--episodes", type=int, default=2, help="per N2N/random stage")
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--distill-epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--flops-target", type=float, default=0.5)
    parser.add_argument("--kernel-betas", default="1.0,3.0,10.0")
    parser.add_argument("--kernel-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or RESULTS / f"methods_{args.dataset}.md"
    workdir = Path(tempfile.mkdtemp(prefix="hwc-methods-"))
    rows = []
    teacher = None
    for method, cfg in configs(args, workdir):
        t0 = time.perf_counter()
        result = run_search(cfg)
        wall = time.perf_counter() - t0
        teacher = result.teacher
        best = result.best
        info = json.loads((result.out / "results.json").read_text())["best"]
        rows.append(
            {
                "method": method,
                "candidates": len(result.candidates),
                "stages": " → ".join(cfg.stages),
                "metrics": best.metrics if best else {},
                "genome": best.genome if best else {},
                "test": info["test_accuracy"] if info else float("nan"),
                "wall": wall,
            }
        )
        print(method, rows[-1]["candidates"], f"{wall / 60:.1f} min", flush=True)
    write(out, rows, teacher, args)


def write(out: Path, rows: list[dict], teacher: dict | None, args: argparse.Namespace) -> None:
    assert teacher is not None
    tm = teacher["metrics"]
    lines = [
        f"# Compression methods under the same candidate budget — {args.dataset}",
        "",
        f"Teacher `builtin:vgg` ({tm['params']:,} params, {tm['macs']:,} MACs, "
        f"{tm['weight_bytes']:,} weight bytes, {tm['latency_ms']:.4f} ms; validation "
        f"{teacher['val_accuracy']:.2%}, test {teacher['test_accuracy']:.2%}), profile "
        f"`{args.profile}`, {2 * args.episodes * args.rollouts} candidates per method, "
        f"{args.distill_epochs} distillation epochs per candidate on "
        f"{args.train_limit or 'all'} training samples, seed {args.seed}. drl-prune: MACs "
        f"target {args.flops_target:g} × teacher, kernel KL weights {args.kernel_betas}, "
        f"{args.kernel_steps} variational steps. Quantization is left out of all three. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only, 1 torch thread.",
        "",
        "| method | stages | candidates | params (compression) | MACs (reduction) | weight bytes "
        "| latency ms (speed-up) | val acc | test acc | Δ test | wall |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["metrics"]
        if not m:
            lines.append(f"| {r['method']} | {r['stages']} | {r['candidates']} | no student |")
            continue
        lines.append(
            f"| {r['method']} | {r['stages']} | {r['candidates']} | {m['params']:,.0f} "
            f"({tm['params'] / m['params']:.1f}×) | {m['macs']:,.0f} "
            f"({tm['macs'] / m['macs']:.1f}×) | {m['weight_bytes']:,.0f} | "
            f"{m['latency_ms']:.4f} ({tm['latency_ms'] / m['latency_ms']:.2f}×) | "
            f"{m['val_accuracy']:.2%} | {r['test']:.2%} | "
            f"{100 * (r['test'] - teacher['test_accuracy']):+.2f} | {r['wall'] / 60:.1f} min |"
        )
    lines += ["", "Best students' genomes:", ""]
    for r in rows:
        g = r["genome"]
        removed = sorted(k for k, v in g.get("keep", {}).items() if not v)
        widths = ", ".join(f"{k} {v:.2f}" for k, v in sorted(g.get("width", {}).items()))
        kernels = ", ".join(f"{k} {v[0]}×{v[1]}" for k, v in sorted(g.get("kernel", {}).items()))
        lines.append(
            f"- {r['method']}: removed [{', '.join(removed)}]; widths [{widths}]; "
            f"kernels [{kernels}]"
        )
    lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
