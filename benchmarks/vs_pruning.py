"""The search's product against Torch-Pruning at the same parameter count, same distillation.

One trained teacher (the built-in VGG on Fashion-MNIST by default). For each seed:

1. ``hwcompress search`` (removal + shrinkage, seeds, multi-fidelity) within a time budget;
2. Torch-Pruning's ``MagnitudePruner`` with L1 importance, uniform (per layer) and global, on
   the same teacher, its pruning ratio bisected until the student has the product's parameter
   count (±2 %);
3. every contender — the product's architecture rebuilt from the teacher with inherited weights,
   and both Torch-Pruning students — distilled with the same ``distill()`` settings on the
   whole training split, then scored on the test split;
4. latency of every contender and the teacher in onnxruntime, interleaved (A, B, C, T, A, …),
   reported as the ratio to the teacher.

Writes ``benchmarks/results/vs_pruning_<dataset>.md`` (rewritten after each seed).

Usage: python benchmarks/vs_pruning.py [--dataset fashion_mnist] [--data-dir DIR]
       [--seeds 0,1,2] [--budget-minutes 60] [--final-epochs 15] [--train-limit 20000]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hwcompress.arch import Genome, build_student
from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import resolve_teacher
from hwcompress.export import export_fp32
from hwcompress.measure.latency import interleaved_latency
from hwcompress.measure.stats import analyze_module
from hwcompress.search import SearchConfig, run_search
from hwcompress.train import DistillConfig, TeacherLogits, TrainConfig, distill, evaluate

RESULTS = Path(__file__).parent / "results"


def tp_prune(teacher: torch.nn.Module, shape: tuple[int, ...], params: int, global_: bool):
    """Torch-Pruning L1 magnitude pruning of a copy of ``teacher`` to ~``params`` parameters."""
    import torch_pruning as tp

    def pruned(ratio: float) -> torch.nn.Module:
        model = copy.deepcopy(teacher).train()
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        pruner = tp.pruner.MagnitudePruner(
            model,
            torch.zeros(shape),
            importance=tp.importance.MagnitudeImportance(p=1),
            global_pruning=global_,
            pruning_ratio=ratio,
            ignored_layers=[head],
        )
        pruner.step()
        return model.eval()

    lo, hi, best = 0.0, 0.99, None
    for _ in range(14):
        mid = (lo + hi) / 2
        model = pruned(mid)
        n = sum(p.numel() for p in model.parameters())
        if best is None or abs(n - params) < abs(best[1] - params):
            best = (model, n)
        if abs(n - params) <= 0.02 * params:
            break
        lo, hi = (mid, hi) if n > params else (lo, mid)
    assert best is not None
    return best[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument(
        "--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR", "../shared/datasets")
    )
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget-minutes", type=float, default=60.0)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--distill-epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--final-epochs", type=int, default=15)
    parser.add_argument("--target", default=None, help="e.g. params=10x (default: N2N reward)")
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--append", action="store_true", help="keep the rows of earlier seeds in the table"
    )
    args = parser.parse_args()
    out = args.out or RESULTS / f"vs_pruning_{args.dataset}.md"
    data = load_data(DataConfig(name=args.dataset, data_dir=args.data_dir, batch_size=128))
    teacher = resolve_teacher(
        "builtin:vgg",
        data,
        train_config=TrainConfig(epochs=args.teacher_epochs, patience=4),
        reporter=print,
    )
    model = teacher.model
    shape = data.input_shape
    t_params = sum(p.numel() for p in model.parameters())
    t_test = evaluate(model, data.test)
    t_macs = analyze_module(model, shape).metrics()["macs"]
    ckpt = Path(teacher.source) if Path(teacher.source).is_file() else None
    if ckpt is None:
        from hwcompress.data.teachers import save_checkpoint

        ckpt = save_checkpoint(model, Path(tempfile.mkdtemp()) / "teacher.pt", {})
    logits = TeacherLogits(model, data.train)
    final = DistillConfig(
        epochs=args.final_epochs, patience=args.final_epochs, lr=3e-3, kd_weight=1.0
    )
    work = Path(tempfile.mkdtemp(prefix="hwc-vs-pruning-"))
    rows: list[dict] = []
    saved = out.with_suffix(".json")
    if args.append and saved.is_file():
        rows = json.loads(saved.read_text())
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        result = run_search(
            SearchConfig(
                profile=args.profile,
                dataset=args.dataset,
                data_dir=args.data_dir,
                teacher_weights=str(ckpt),
                episodes=args.episodes,
                rollouts=args.rollouts,
                distill_epochs=args.distill_epochs,
                train_limit=args.train_limit,
                budget_minutes=args.budget_minutes,
                kd_weight=1.0,
                final_epochs=0,  # every contender gets the same final distillation below
                seed=seed,
                target=(args.target,) if args.target else (),
                out=str(work / f"search-{seed}"),
            )
        )
        search_s = time.perf_counter() - t0
        assert result.best is not None
        genome = Genome.from_dict(result.best.genome)
        ours = build_student(model, genome, shape)
        n = sum(p.numel() for p in ours.parameters())
        contenders = {
            f"hwcompress ({result.best.stage}, {result.best.label or result.best.method})": ours,
            "Torch-Pruning uniform L1": tp_prune(model, shape, n, global_=False),
            "Torch-Pruning global L1": tp_prune(model, shape, n, global_=True),
        }
        paths = {"teacher": export_fp32(model, shape, work / f"teacher-{seed}.onnx")}
        for i, (name, student) in enumerate(contenders.items()):
            torch.manual_seed(seed)
            res = distill(
                student,
                model,
                data,
                DistillConfig(**{**final.to_dict(), "seed": seed}),
                teacher_logits=logits,
            )
            paths[name] = export_fp32(student, shape, work / f"c{i}-{seed}.onnx")
            stats = analyze_module(student, shape).metrics()
            rows.append(
                {
                    "seed": seed,
                    "name": name,
                    "params": stats["params"],
                    "macs": stats["macs"],
                    "val": res.val_accuracy,
                    "test": evaluate(student, data.test),
                    "search_s": search_s if i == 0 else None,
                }
            )
            print(rows[-1], flush=True)
        lat = interleaved_latency(paths, shape, rounds=30, runs=20)
        for row in rows:
            if row["seed"] == seed:
                row["latency_ratio"] = lat[row["name"]] / lat["teacher"]
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(rows, indent=1))
        write(out, rows, args, t_params, t_test, t_macs, teacher.source)


def write(out, rows, args, t_params, t_test, t_macs, source) -> None:
    lines = [
        f"# Search product vs Torch-Pruning on {args.dataset}, same size, same distillation",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only (shared VM; "
        "timings interleaved, as ratios). Teacher `builtin:vgg`: "
        f"{t_params:,} params, {t_macs / 1e6:.2f} M MACs, **test {t_test:.2%}** ({source}).",
        "",
        f"Search: profile {args.profile}, {args.budget_minutes:g} min budget, "
        f"{args.episodes} episodes × {args.rollouts} rollouts, {args.distill_epochs} proxy "
        f"epochs on {args.train_limit} samples, target {args.target or 'none (N2N reward)'}. "
        f"Every contender then: built from the teacher with inherited weights, distilled "
        f"{args.final_epochs} epochs (lr 3e-3, soft-target weight 1) on the whole training "
        "split, same seed.",
        "",
        "| seed | contender | params | compression | MACs | val | test | Δ test (points) "
        "| latency / teacher |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['name']} | {r['params']:,.0f} | {t_params / r['params']:.1f}× "
            f"| {r['macs'] / 1e6:.2f} M | {r['val']:.2%} | {r['test']:.2%} "
            f"| {100 * (r['test'] - t_test):+.2f} | {r.get('latency_ratio', float('nan')):.2f} |"
        )
    names = list(dict.fromkeys(r["name"].split(" (")[0] for r in rows))
    lines += [
        "",
        "| contender | seeds | mean test | spread (min–max) | mean Δ test |",
        "|---|---:|---:|---|---:|",
    ]
    for name in names:
        tests = [r["test"] for r in rows if r["name"].split(" (")[0] == name]
        lines.append(
            f"| {name} | {len(tests)} | {statistics.mean(tests):.2%} | "
            f"{min(tests):.2%}–{max(tests):.2%} | {100 * (statistics.mean(tests) - t_test):+.2f} |"
        )
    searches = [r["search_s"] for r in rows if r["search_s"] is not None]
    lines += ["", f"Search wall time per seed: {', '.join(f'{s / 60:.1f} min' for s in searches)}."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
