"""The learned N2N policy against random search, same candidate budget, several seeds.

For each method and seed a full search runs (removal then shrinkage) on the built-in VGG
teacher. The table reports the best feasible reward, the best compression among students
within 1 accuracy point of the teacher (validation split; the test accuracy of that student
is reported beside it), latency, wall time and the mean reward per episode. Writes
``benchmarks/results/search_vs_random_<dataset>.md``.

Usage: python benchmarks/search_vs_random.py [--dataset digits] [--episodes 8] [--rollouts 4]
       [--seeds 0,1,2] [--profile x86_host] [--data-dir DIR] [--teacher-weights FILE]
       [--budget-minutes M] [--train-limit N] [--distill-epochs E] [--methods n2n,random]
       [--reuse DIR] [--target latency_ms=3x] [--promote-epochs P] [--screen-pool K]

The methods of a seed run back to back, and the second is handed the first's latency model and
kept timings (``latencies.json``): under a latency target both choose the same latency-matched
seeds and judge a student they share on one timing, so a pair differs in its own samples only.

``--reuse DIR`` takes the runs of an earlier invocation (its ``<method>-<seed>`` folders, printed
at the start) that were made with the same settings and summarises them instead of running
them again: for a change that leaves one method's code path alone (random search never uses
the policy), only the other method needs rerunning. The table says which rows were reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from hwcompress.arch import Genome, build_student
from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import load_checkpoint, resolve_teacher
from hwcompress.search import SearchConfig, run_search
from hwcompress.search.candidate import Candidate
from hwcompress.search.finish import SearchResult
from hwcompress.search.journal import Journal
from hwcompress.search.latency_memo import FILE_NAME as LATENCIES
from hwcompress.search.latency_model import FILE_NAME as LATENCY_MODEL
from hwcompress.train import evaluate

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR"))
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--distill-epochs", type=int, default=4)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="n2n,random")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--teacher-weights", default=None, help="a trained teacher checkpoint")
    parser.add_argument("--budget-minutes", type=float, default=None, help="per search run")
    parser.add_argument(
        "--promote-epochs",
        type=int,
        default=None,
        help="extra epochs of a promoted candidate (default: the search's)",
    )
    parser.add_argument(
        "--screen-pool",
        type=int,
        default=None,
        help="proposals an N2N policy draws per rollout trained (1: no screening; "
        "default: the search's)",
    )
    parser.add_argument("--reuse", type=Path, default=None, help="an earlier invocation's runs")
    parser.add_argument(
        "--target",
        default=None,
        help="e.g. latency_ms=3x: rewards become accuracy within the target (default: N2N's)",
    )
    args = parser.parse_args()
    out = args.out or RESULTS / f"search_vs_random_{args.dataset}.md"
    rows, curves = [], {}
    workdir = Path(tempfile.mkdtemp(prefix="hwc-bench-"))
    print(f"runs in {workdir}", flush=True)
    # seed by seed, the methods back to back: the machine's drift between minutes (latency
    # decides feasibility) falls on both members of a pair alike
    for seed in (int(s) for s in args.seeds.split(",")):
        shared: Path | None = None  # the pair's first run: its timings are the pair's
        for method in args.methods.split(","):
            cfg = SearchConfig(
                profile=args.profile,
                dataset=args.dataset,
                data_dir=args.data_dir,
                episodes=args.episodes,
                rollouts=args.rollouts,
                distill_epochs=args.distill_epochs,
                seed=seed,
                method=method,
                train_limit=args.train_limit,
                teacher_weights=args.teacher_weights,
                budget_minutes=args.budget_minutes,
                target=(args.target,) if args.target else (),
                final_epochs=0,  # the table compares search-time figures
                **(
                    {"promote_epochs": args.promote_epochs}
                    if args.promote_epochs is not None
                    else {}
                ),
                **({"screen_pool": args.screen_pool} if args.screen_pool is not None else {}),
                out=str(workdir / f"{method}-{seed}"),
            )
            earlier = args.reuse / f"{method}-{seed}" if args.reuse else None
            if earlier is not None and (earlier / "results.json").is_file():
                result, wall = reused(earlier, cfg)
                rows.append({**summarise(result, method, seed, wall, cfg), "reused": True})
            else:
                if shared is not None:
                    share_timings(shared, Path(cfg.out))
                t0 = time.perf_counter()
                result = run_search(cfg)
                wall = time.perf_counter() - t0
                rows.append(summarise(result, method, seed, wall, cfg))
            curves.setdefault(method, []).append(
                [r["mean_reward"] for r in Journal(result.out / "journal.jsonl").episodes()]
            )
            shared = shared or result.out
            print(rows[-1], flush=True)
            write(out, rows, curves, args, quiet=True)  # what is done so far survives a stop
    write(out, rows, curves, args)


def share_timings(first: Path, out: Path) -> None:
    """Hands the pair's first run's latency model and kept timings (``latencies.json``) to
    the next run of the pair before it starts: both then choose the same latency-matched seeds
    and judge every student they share on one measurement, so the pair differs only in its
    own samples (a student timed 0.097 ms in one run and 0.134 ms in the next on this VM,
    against a budget near 0.13 ms, and the two runs drew different seeds)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (LATENCY_MODEL, LATENCIES):
        if (first / name).is_file():
            shutil.copyfile(first / name, out / name)


def reused(run: Path, cfg: SearchConfig) -> tuple[SearchResult, float]:
    """A finished run of an earlier invocation, if it was made with ``cfg``'s settings, and
    its wall time (from its folder's first and last writes)."""
    made = json.loads((run / "config.json").read_text())
    keys = ("dataset", "profile", "method", "seed", "episodes", "rollouts", "distill_epochs")
    keys += ("train_limit", "budget_minutes", "target", "promote_epochs")
    differ = [
        k
        for k in keys
        if (list(made.get(k) or []) if k == "target" else made.get(k))
        != (list(getattr(cfg, k)) if k == "target" else getattr(cfg, k))
    ]
    if cfg.method == "n2n" and made.get("screen_pool", 1) != cfg.screen_pool:
        differ.append("screen_pool")  # a run from before screening drew no pool
    if differ:
        raise SystemExit(f"{run} was made with other settings ({', '.join(differ)}); rerun it")
    saved = json.loads((run / "results.json").read_text())
    candidates = [Candidate.from_dict(c) for c in saved["candidates"]]
    best_id = (saved.get("best") or {}).get("id")
    result = SearchResult(
        out=run,
        teacher=saved["teacher"],
        best=next((c for c in candidates if c.id == best_id), None),
        stages={},
        candidates=candidates,
    )
    wall = (run / "results.json").stat().st_mtime - (run / "config.json").stat().st_mtime
    return result, wall


def summarise(result, method: str, seed: int, wall: float, cfg: SearchConfig) -> dict:
    t = result.teacher
    ok = [c for c in result.candidates if c.status == "ok"]
    feasible = [c for c in ok if c.feasible]
    close = [c for c in feasible if c.metrics["val_accuracy"] >= t["val_accuracy"] - 0.01]
    top = max(close, key=lambda c: c.metrics["compression"]) if close else None
    best = max(feasible, key=lambda c: c.reward, default=None)
    # the test split never feeds the reward; it is only reported here
    product = result.best  # the leaders re-timed in turn with the teacher chose it
    need = [c for c in (top, best, product) if c is not None]
    tests: dict[str, float] = {}
    if need:
        data = load_data(
            DataConfig(
                name=cfg.dataset, data_dir=cfg.data_dir, seed=cfg.seed, train_limit=cfg.train_limit
            )
        )
        teacher = resolve_teacher(cfg.teacher, data, weights=cfg.teacher_weights).model
        for cand in need:
            student = build_student(teacher, Genome.from_dict(cand.genome), data.input_shape)
            student.load_state_dict(
                load_checkpoint(result.out / cand.artifacts["weights"])["state_dict"]
            )
            tests[cand.id] = evaluate(student, data.test)
    test = tests.get(top.id) if top is not None else None
    return {
        "method": method,
        "seed": seed,
        "candidates": len(result.candidates),
        "best_reward": max((c.reward for c in feasible), default=float("nan")),
        # the seeds are the same for both methods: what separates them is their own samples
        "best_policy_reward": max(
            (c.reward for c in feasible if c.method == method), default=float("nan")
        ),
        "best_seed_reward": max(
            (c.reward for c in feasible if c.method == "baseline"), default=float("nan")
        ),
        "product_stage": f"{result.best.stage}/{result.best.method}" if result.best else "—",
        # the best feasible student by reward: who found it, its test accuracy and fidelity
        "best_from": f"{best.stage}/{best.method}" if best else "—",
        "best_test": tests[best.id] if best is not None else float("nan"),
        "best_fidelity": best.fidelity if best is not None else 0,
        "product_reward": product.reward if product is not None else float("nan"),
        "product_test": tests[product.id] if product is not None else float("nan"),
        "compression_1pt": top.metrics["compression"] if top else float("nan"),
        "val_acc": top.metrics["val_accuracy"] if top else float("nan"),
        "test_acc": test if test is not None else float("nan"),
        "teacher_val": t["val_accuracy"],
        "teacher_test": t["test_accuracy"],
        "latency_speedup": (
            t["metrics"]["latency_ms"] / top.metrics["latency_ms"] if top else float("nan")
        ),
        "wall_s": wall,
    }


def _num(value: float, spec: str, unit: str = "") -> str:
    """``value`` formatted, or a dash when there is none (NaN)."""
    return "—" if math.isnan(value) else f"{value:{spec}}{unit}"


def _mean_of_found(values: list[float]) -> str:
    """The mean of the values that exist, with how many there were."""
    found = [v for v in values if not math.isnan(v)]
    if not found:
        return "—"
    return f"{statistics.mean(found):.1f}× ({len(found)} of {len(values)} runs)"


def write(
    out: Path, rows: list[dict], curves: dict, args: argparse.Namespace, quiet: bool = False
) -> None:
    lines = [
        f"# N2N policy vs random search — {args.dataset}",
        "",
        f"Teacher `builtin:vgg`, profile `{args.profile}`, {args.episodes} episodes × "
        f"{args.rollouts} rollouts per stage (removal, shrinkage), {args.distill_epochs} "
        f"distillation epochs per candidate"
        + (f", {args.budget_minutes:g}-minute budget per run" if args.budget_minutes else "")
        + (
            f", promoted candidates {args.promote_epochs} more epochs"
            if args.promote_epochs is not None
            else ""
        )
        + (
            f", N2N screen pool {args.screen_pool} proposals per rollout"
            + (" (off)" if args.screen_pool == 1 else "")
            if args.screen_pool is not None
            else ""
        )
        + (f", at most {args.train_limit} training samples" if args.train_limit else "")
        + (
            f", target `{args.target}` (reward: accuracy ratio within it, −1 outside)"
            if args.target
            else ""
        )
        + f". Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, CPU only.",
        "",
        "| method | seed | candidates | best feasible reward (with seeds) | best of its own "
        "samples | best seed | best from | its test acc (fidelity) | product from | its "
        "reward | its test acc | compression at ≤1 pt loss | its val acc | its test acc | "
        "teacher val / test | latency speed-up | wall |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["method"], r["seed"])):
        lines.append(
            f"| {r['method']} | {r['seed']} | {r['candidates']} | {r['best_reward']:.4f} | "
            f"{r['best_policy_reward']:.4f} | {r['best_seed_reward']:.4f} | "
            f"{r['best_from']} | {_num(r['best_test'], '.2%')} ({r['best_fidelity']}) | "
            f"{r['product_stage']} | {_num(r['product_reward'], '.4f')} | "
            f"{_num(r['product_test'], '.2%')} | "
            f"{_num(r['compression_1pt'], '.1f', '×')} | {_num(r['val_acc'], '.2%')} | "
            f"{_num(r['test_acc'], '.2%')} | "
            f"{r['teacher_val']:.2%} / {r['teacher_test']:.2%} | "
            f"{_num(r['latency_speedup'], '.2f', '×')} | "
            f"{r['wall_s'] / 60:.1f} min{' (reused)' if r.get('reused') else ''} |"
        )
    if args.reuse:
        lines += [
            "",
            f"Rows marked *(reused)* are runs of an earlier invocation (`{args.reuse}`) with the "
            "same settings, summarised again, not rerun; their wall time is their folder's first "
            "to last write.",
        ]
    lines += [
        "",
        "| method | mean best feasible reward (with seeds) | mean best of its own samples "
        "| mean test acc of the best feasible | mean product test acc "
        "| mean compression at ≤1 pt loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        lines.append(
            f"| {method} | {statistics.mean(r['best_reward'] for r in mine):.4f} | "
            f"{statistics.mean(r['best_policy_reward'] for r in mine):.4f} | "
            f"{_num(statistics.mean(r['best_test'] for r in mine), '.2%')} | "
            f"{_num(statistics.mean(r['product_test'] for r in mine), '.2%')} | "
            f"{_mean_of_found([r['compression_1pt'] for r in mine])} |"
        )
    by = {(r["method"], r["seed"]): r for r in rows}
    pairs = [
        (by[("n2n", s)], by[("random", s)]) for m, s in by if m == "n2n" and ("random", s) in by
    ]
    if pairs:
        for key, what in (
            ("best_reward", "best feasible reward with the shared seeds"),
            ("best_policy_reward", "best of its own samples"),
            ("best_test", "test accuracy of the best feasible student (with the seeds)"),
            ("product_reward", "the product's reward (its leaders re-timed before the choice)"),
            ("product_test", "the product's test accuracy"),
        ):
            gaps = [a[key] - b[key] for a, b in pairs]
            wins, ties = sum(g > 0 for g in gaps), sum(g == 0 for g in gaps)
            lines += [
                "",
                f"Paired gap, n2n − random, {what}, per seed: "
                + ", ".join(f"{g:+.4f}" for g in gaps)
                + f"; mean {statistics.mean(gaps):+.4f}, n2n ahead on {wins} of {len(gaps)} "
                f"seeds ({ties} tied).",
            ]
    lines += [
        "",
        "Mean reward per episode (averaged over seeds; removal episodes first, then shrinkage):",
        "",
    ]
    for method, runs in curves.items():
        n = min(len(c) for c in runs)
        mean = [statistics.mean(c[i] for c in runs) for i in range(n)]
        lines.append(f"- {method}: " + ", ".join(f"{v:+.3f}" for v in mean))
    lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if not quiet:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
