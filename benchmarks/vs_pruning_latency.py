"""The search's product against Torch-Pruning at the same *measured latency*, same distillation.

What a user with a latency budget would do instead of searching: prune the teacher with
Torch-Pruning until the model is fast enough on the device, then distil. One trained teacher
(the built-in VGG on Fashion-MNIST by default); for each latency target (``3×`` and ``5×``
faster than the teacher, profile ``x86_host``: this machine is the device) and seed:

1. ``hwcompress search --target latency_ms=Fx`` (removal + shrinkage, seeds, multi-fidelity)
   within a time budget;
2. Torch-Pruning (``DependencyGraph`` through ``MetaPruner``, L1 magnitude importance):
   uniform per layer, global, and uniform with channels rounded to 16 (``round_to``, the
   x86 kernels' block): for each, a grid of pruning ratios is timed in turn with the teacher
   and the least-pruned student whose latency ratio meets the target, timed again, is kept
   (a variant no ratio of which meets it is named under the table, not distilled);
   NVIDIA ModelOpt's FastNAS (``nvidia-modelopt``, channels in steps of 16, a FLOPs
   constraint tightened until the measured latency meets the target) where it installs
   (``pip install nvidia-modelopt torchprofile==0.0.4 huggingface_hub``; ``--no-fastnas``
   leaves it out);
3. every contender — the product's architecture rebuilt from the teacher with inherited
   weights, and the pruned students — distilled with the same ``distill()`` settings
   on the whole training split, then scored on the test split;
4. every contender's latency re-measured in onnxruntime in turn with the teacher
   (T, A, B, C, …, 10 s at least) in three sittings half a minute apart, the median of all
   inferences (the statistic the search and the grids use) reported as the ratio to the
   teacher (the median of the sittings, each sitting beside it), and whether it meets the
   target.

Writes ``benchmarks/results/vs_pruning_latency_<dataset>.md`` (and ``.json``), rewritten
after each (target, seed); ``--append`` keeps earlier rows, so seeds can run in separate
sittings with the same code.

Usage: python benchmarks/vs_pruning_latency.py [--targets 3,5] [--seeds 0,1,2]
       [--budget-minutes 15] [--final-epochs 10] [--append] [--search-only | --peers-only]
       [--variants "Torch-Pruning uniform L1,Torch-Pruning global L1"]
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
from hwcompress.hardware import load_profile
from hwcompress.hardware.schema import host_cpu
from hwcompress.measure.latency import measure_local_many
from hwcompress.measure.stats import analyze_module
from hwcompress.search import SearchConfig, run_search
from hwcompress.train import DistillConfig, TeacherLogits, TrainConfig, distill, evaluate

RESULTS = Path(__file__).parent / "results"
#: Each grid's timing (and each re-timing of a grid's choice) lasts this long at least (s).
GRID_MIN_TIME_S = 6.0
#: Torch-Pruning variants: (label, global pruning, round_to).
TP_VARIANTS = (
    ("Torch-Pruning uniform L1", False, None),
    ("Torch-Pruning global L1", True, None),
    ("Torch-Pruning uniform L1, round_to=16", False, 16),
)


def tp_pruned(
    teacher: torch.nn.Module, shape: tuple[int, ...], ratio: float, global_: bool, round_to
) -> torch.nn.Module:
    """A copy of ``teacher`` pruned by Torch-Pruning's MetaPruner at ``ratio`` (L1)."""
    import torch_pruning as tp

    model = copy.deepcopy(teacher).train()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(
        model,
        torch.zeros(shape),
        importance=tp.importance.MagnitudeImportance(p=1),
        global_pruning=global_,
        pruning_ratio=ratio,
        ignored_layers=[head],
        round_to=round_to,
    )
    pruner.step()
    return model.eval()


def tp_at_latency(
    teacher: torch.nn.Module,
    teacher_onnx: Path,
    shape: tuple[int, ...],
    target_ratio: float,
    global_: bool,
    round_to,
    profile,
    work: Path,
) -> tuple[torch.nn.Module, float, float]:
    """The least-pruned Torch-Pruning student whose latency, timed in turn with the
    teacher, is within ``target_ratio`` of the teacher's (a grid of ratios, since latency is
    not monotone in the ratio where channel counts leave the kernels' blocks).

    Returns:
        The student, its pruning ratio and its measured latency ratio.
    """
    grid = [round(0.05 * i, 2) for i in range(2, 20)]
    models, paths = {}, {}
    for r in grid:
        models[r] = tp_pruned(teacher, shape, r, global_, round_to)
        paths[r] = export_fp32(models[r], shape, work / f"tp-{int(global_)}-{round_to}-{r}.onnx")
    res = measure_local_many(
        [teacher_onnx, *paths.values()], profile, rounds=15, runs=5, min_time_s=GRID_MIN_TIME_S
    )
    t_ms = res[0].median_ms
    ratios = {r: x.median_ms / t_ms for r, x in zip(grid, res[1:], strict=True)}
    # a 3 % margin: the final measurement is another sitting of the same timing; and the
    # least-pruned ratio that meets it is timed again before it is kept (one lucky sitting
    # of a slow student would otherwise stand for the contender)
    limit = 0.97 * target_ratio
    for r in sorted(r for r in grid if ratios[r] <= limit):
        again = measure_local_many(
            [teacher_onnx, paths[r]], profile, rounds=30, runs=5, min_time_s=GRID_MIN_TIME_S
        )
        ratios[r] = again[1].median_ms / again[0].median_ms
        if ratios[r] <= limit:
            return models[r], r, ratios[r]
    # none meets it: the fastest of the grid (with round_to, channel counts stop at the
    # multiple, and a ratio that would prune a layer below it keeps the layer whole)
    fastest = min(grid, key=lambda r: ratios[r])
    return models[fastest], fastest, ratios[fastest]


def fastnas_at_latency(
    teacher: torch.nn.Module,
    teacher_onnx: Path,
    data,
    target_ratio: float,
    profile,
    work: Path,
) -> tuple[torch.nn.Module | None, dict]:
    """NVIDIA ModelOpt's FastNAS pruning (``mtp.prune(mode="fastnas")``) under a FLOPs
    constraint, tightened until the pruned model's latency, timed in turn with the teacher,
    meets ``target_ratio``; its score is validation accuracy after its
    own batch-norm recalibration. Channels in steps of 16, the x86 kernels' block (the
    search snaps to it too). None (and why) where ModelOpt does not import here or no
    subnet meets the target."""
    try:
        import modelopt.torch.prune as mtp
    except Exception as err:  # not installed, or a dependency missing
        return None, {"skipped": f"nvidia-modelopt unavailable ({type(err).__name__}: {err})"}
    shape = data.input_shape
    val_subset = [b for i, b in enumerate(data.val) if i < 8]

    def score(model: torch.nn.Module) -> float:
        return evaluate(model, val_subset)

    mode = [
        (
            "fastnas",
            {
                "nn.Conv2d": {"*": {"channel_divisor": 16}},
                "nn.BatchNorm2d": {"*": {"feature_divisor": 16}},
            },
        )
    ]
    tried = []
    for i, flops in enumerate((1.0, 0.8, 0.6, 0.45, 0.33, 0.25)):
        share = flops * target_ratio
        model = copy.deepcopy(teacher)
        t0 = time.perf_counter()
        try:
            pruned, _ = mtp.prune(
                model,
                mode=mode,
                constraints={"flops": f"{100 * share:.1f}%"},
                dummy_input=torch.zeros(shape),
                config={
                    "data_loader": data.train,
                    "score_func": score,
                    "checkpoint": str(work / f"fastnas-{i}.pth"),
                },
            )
        except ValueError as err:  # no subnet of the space meets the constraint
            tried.append({"flops": share, "error": str(err)[:120]})
            continue
        path = export_fp32(pruned, shape, work / f"fastnas-{i}.onnx")
        res = measure_local_many(
            [teacher_onnx, path], profile, rounds=15, runs=5, min_time_s=GRID_MIN_TIME_S
        )
        ratio = res[1].median_ms / res[0].median_ms
        tried.append({"flops": share, "latency_ratio": ratio, "s": time.perf_counter() - t0})
        if ratio <= 0.97 * target_ratio:
            return pruned.eval(), {"fastnas_flops": share, "grid_latency_ratio": ratio}
    return None, {"skipped": f"no FastNAS subnet met the latency target: {tried}"}


def split_variants(text: str, known: set[str]) -> list[str]:
    """The variant names in a comma-separated list (a name may hold a comma itself:
    ``Torch-Pruning uniform L1, round_to=16``): each name is the longest run of pieces that
    names a known variant; a piece that starts none is a name of its own (an unknown one)."""
    pieces = text.split(",")
    names: list[str] = []
    i = 0
    while i < len(pieces):
        end = next(
            (j for j in range(len(pieces), i, -1) if ",".join(pieces[i:j]).strip() in known),
            i + 1,
        )
        if name := ",".join(pieces[i:end]).strip():
            names.append(name)
        i = end
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument(
        "--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR", "../shared/datasets")
    )
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--targets", default="3,5", help="speed-ups over the teacher")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget-minutes", type=float, default=15.0)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--distill-epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--final-epochs", type=int, default=10)
    parser.add_argument(
        "--latency-headroom",
        type=float,
        default=SearchConfig.__dataclass_fields__["latency_headroom"].default,
        help="the share under the target the search aims at (its default)",
    )
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument(
        "--teacher-weights",
        default=None,
        help="a trained teacher checkpoint (else the cached teacher of --teacher-epochs)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--append", action="store_true", help="keep the rows of earlier runs in the table"
    )
    parser.add_argument("--no-fastnas", action="store_true", help="leave ModelOpt out")
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="the search's product alone (a code change measured against earlier rows of the "
        "peers, whose students and distillation do not depend on the search)",
    )
    parser.add_argument(
        "--peers-only",
        action="store_true",
        help="the peers alone (added with --append to a --search-only table of the same "
        "teacher, so that a search change and the peers can run in separate sittings)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(name for name, _, _ in TP_VARIANTS),
        help="the Torch-Pruning variants, by name, comma-separated",
    )
    args = parser.parse_args()
    if args.search_only and args.peers_only:
        parser.error("--search-only and --peers-only leave nothing to run; pick one")
    known = {name for name, _, _ in TP_VARIANTS}
    variants = split_variants(args.variants, known)
    if unknown := sorted(set(variants) - known):
        parser.error(f"unknown variant(s) {unknown}; choose from {sorted(known)}")
    chosen = () if args.search_only else [v for v in TP_VARIANTS if v[0] in variants]
    skipped: list[str] = []
    out = args.out or RESULTS / f"vs_pruning_latency_{args.dataset}.md"
    profile = load_profile(args.profile)
    data = load_data(DataConfig(name=args.dataset, data_dir=args.data_dir, batch_size=128))
    teacher = resolve_teacher(
        "builtin:vgg",
        data,
        weights=args.teacher_weights,
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
    work = Path(tempfile.mkdtemp(prefix="hwc-vs-pruning-latency-"))
    teacher_onnx = export_fp32(model, shape, work / "teacher.onnx")
    rows: list[dict] = []
    saved = out.with_suffix(".json")
    left_out = out.with_suffix(".left_out.json")
    if args.append and saved.is_file():
        rows = json.loads(saved.read_text())
        if left_out.is_file():
            skipped += json.loads(left_out.read_text())
    started = time.strftime("%Y-%m-%d %H:%M")
    code = _code_version()
    for factor in (float(f) for f in args.targets.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            contenders: dict[str, torch.nn.Module] = {}
            search_s = None
            t0 = time.perf_counter()
            result = (
                None
                if args.peers_only
                else run_search(
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
                        target=(f"latency_ms={factor:g}x",),
                        latency_headroom=args.latency_headroom,
                        out=str(work / f"search-{factor:g}-{seed}"),
                    )
                )
            )
            if result is not None:
                search_s = time.perf_counter() - t0
                assert result.best is not None
                genome = Genome.from_dict(result.best.genome)
                label = result.best.label or result.best.method
                contenders[f"hwcompress ({result.best.stage}, {label})"] = build_student(
                    model, genome, shape
                )
            pruning = {}
            for name, global_, round_to in chosen:
                student, ratio, measured = tp_at_latency(
                    model, teacher_onnx, shape, 1 / factor, global_, round_to, profile, work
                )
                if measured > 1 / factor:  # no ratio of the grid is fast enough: not distilled
                    skipped.append(
                        f"{name} at {factor:g}× seed {seed}: no pruning ratio up to 0.95 meets "
                        f"the target (fastest: {measured:.3f} of the teacher's latency, at "
                        f"ratio {ratio:g})"
                    )
                    continue
                contenders[name] = student
                pruning[name] = {"pruning_ratio": ratio, "grid_latency_ratio": measured}
            if not (args.no_fastnas or args.search_only):
                fast, info = fastnas_at_latency(
                    model, teacher_onnx, data, 1 / factor, profile, work
                )
                print("ModelOpt FastNAS:", info, flush=True)
                if fast is not None:
                    contenders["ModelOpt FastNAS (FLOPs)"] = fast
                    pruning["ModelOpt FastNAS (FLOPs)"] = info
                else:
                    skipped.append(
                        f"ModelOpt FastNAS at {factor:g}× seed {seed}: {info['skipped']}"
                    )
            paths = {"teacher": teacher_onnx}
            new = []
            for i, (name, student) in enumerate(contenders.items()):
                torch.manual_seed(seed)
                res = distill(
                    student,
                    model,
                    data,
                    DistillConfig(**{**final.to_dict(), "seed": seed}),
                    teacher_logits=logits,
                )
                paths[name] = export_fp32(student, shape, work / f"c{i}-{factor:g}-{seed}.onnx")
                stats = analyze_module(student, shape).metrics()
                new.append(
                    {
                        "target": factor,
                        "seed": seed,
                        "name": name,
                        "params": stats["params"],
                        "macs": stats["macs"],
                        "val": res.val_accuracy,
                        "test": evaluate(student, data.test),
                        "search_s": search_s if i == 0 else None,
                        **(
                            {  # the product's own sittings in the search (first, again)
                                "search_latency_ratios": [
                                    result.best.metrics.get("latency_ratio"),
                                    result.best.metrics.get("latency_confirmed_ratio"),
                                ],
                                "latency_headroom": args.latency_headroom,
                            }
                            if i == 0 and result is not None and result.best is not None
                            else {}
                        ),
                        "cpu": host_cpu(),
                        "code": code,
                        **pruning.get(name, {}),
                    }
                )
                print(new[-1], flush=True)
            retime(new, paths, profile, factor)
            rows += new
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(rows, indent=1))
            left_out.write_text(json.dumps(skipped, indent=1))
            write(out, rows, args, t_params, t_test, t_macs, teacher.source, started, skipped)


def retime(
    rows: list[dict], paths: dict[str, Path], profile, factor: float, sittings: int = 3
) -> None:
    """Every contender's latency timed again in turn with the teacher (T, A, B, …; 10 s at
    least) in ``sittings`` sittings half a minute apart: this VM's ratios of small students
    to the teacher swing by up to 1.5× between minutes, so one sitting is not a verdict. The
    row keeps the median of the sittings' ratios (each the median of all inferences, the
    statistic the search and the grids use), every sitting's ratio, and the mean-based one.
    """
    names = list(paths)
    per: dict[str, list[float]] = {n: [] for n in names}
    means: dict[str, list[float]] = {n: [] for n in names}
    for i in range(sittings):
        if i:
            time.sleep(30)
        res = measure_local_many(list(paths.values()), profile, rounds=30, runs=20, min_time_s=10.0)
        for name, r in zip(names, res, strict=True):
            per[name].append(r.median_ms / res[0].median_ms)
            means[name].append(r.mean_ms / res[0].mean_ms)
    for row in rows:
        row["latency_sittings"] = per[row["name"]]
        row["latency_ratio"] = statistics.median(per[row["name"]])
        row["latency_ratio_mean"] = statistics.median(means[row["name"]])
        row["meets"] = row["latency_ratio"] <= 1 / factor


def _code_version() -> str:
    """The commit the benchmark runs (``+`` where the work tree has changes).

    Changes under ``benchmarks/results`` do not count: ``--append`` rewrites this
    benchmark's own tables there between runs of the same code.
    """
    import subprocess

    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", *cmd], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ":/",
        ":(top,exclude)benchmarks/results",
    )
    return rev + ("+" if changed else "")


def _family(name: str) -> str:
    return name.split(" (")[0]


def write(out, rows, args, t_params, t_test, t_macs, source, started, skipped=()) -> None:
    lines = [
        f"# Search product vs Torch-Pruning on {args.dataset} at equal measured latency, "
        "same distillation",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only, "
        f"{'; '.join(sorted({r.get('cpu', 'CPU not recorded') for r in rows}))} (shared VM; "
        "latency timed in turn with the teacher, as ratios; onnxruntime, 2 threads). Teacher "
        f"`builtin:vgg`: {t_params:,} params, {t_macs / 1e6:.2f} M MACs, **test {t_test:.2%}** "
        f"({source}).",
        "",
        f"Search: profile {args.profile}, {args.budget_minutes:g} min budget, "
        f"{args.episodes} episodes × {args.rollouts} rollouts, {args.distill_epochs} proxy "
        f"epochs on {args.train_limit} samples, target `latency_ms=Fx` aimed "
        f"{args.latency_headroom:.0%} under (`latency_headroom`). Torch-Pruning: "
        "MetaPruner, L1 magnitude, the least-pruned of ratios 0.10…0.95 whose latency "
        "(timed in turn with the teacher) meets the target. Every contender then: distilled "
        f"{args.final_epochs} epochs (lr 3e-3, soft-target weight 1) on the whole training "
        f"split, same seed. Last run started {started}; code "
        f"{', '.join(sorted({r.get('code', 'not recorded') for r in rows}))}.",
        "",
        "| target | seed | contender | params | MACs | val | test | Δ test (points) "
        "| latency / teacher (median of 3 sittings) | sittings | meets | search min |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|:-:|---:|",
    ]
    for r in rows:
        search = f"{r['search_s'] / 60:.1f}" if r.get("search_s") else ""
        lines.append(
            f"| {r['target']:g}× | {r['seed']} | {r['name']} | {r['params']:,.0f} "
            f"| {r['macs'] / 1e6:.2f} M | {r['val']:.2%} | {r['test']:.2%} "
            f"| {100 * (r['test'] - t_test):+.2f} | {r.get('latency_ratio', float('nan')):.3f} "
            f"| {'/'.join(f'{x:.3f}' for x in r.get('latency_sittings', []))} "
            f"| {'yes' if r.get('meets') else 'NO'} | {search} |"
        )
    lines += [
        "",
        "| target | contender | seeds | mean test | spread (min–max) | mean Δ test | meets |",
        "|---:|---|---:|---:|---|---:|---:|",
    ]
    for factor in sorted({r["target"] for r in rows}):
        at = [r for r in rows if r["target"] == factor]
        for name in dict.fromkeys(_family(r["name"]) for r in at):
            mine = [r for r in at if _family(r["name"]) == name]
            tests = [r["test"] for r in mine]
            lines.append(
                f"| {factor:g}× | {name} | {len(tests)} | {statistics.mean(tests):.2%} | "
                f"{min(tests):.2%}–{max(tests):.2%} | "
                f"{100 * (statistics.mean(tests) - t_test):+.2f} | "
                f"{sum(bool(r.get('meets')) for r in mine)}/{len(mine)} |"
            )
    if skipped:
        lines += ["", "Left out (not distilled): " + "; ".join(skipped)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
