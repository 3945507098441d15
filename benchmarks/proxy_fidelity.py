"""How well the search's accuracy ranks students: Kendall τ against their final accuracy.

Runs one search (or reads a finished run with ``--run``), takes up to ``--candidates`` of its
distinct float students, and distils each one ``--final-epochs`` on the whole training split
from the teacher's inherited weights (the same recipe for all, so the figure is about the
architecture). Then Kendall τ between that final validation accuracy and

- the short proxy's accuracy (fidelity 1: how candidates were ranked before multi-fidelity),
- the accuracy at the highest fidelity each candidate reached (how the search ranks now).

Writes ``benchmarks/results/proxy_fidelity_<dataset>.md``.

Usage: python benchmarks/proxy_fidelity.py [--dataset digits] [--data-dir DIR] [--run DIR]
       [--candidates 24] [--final-epochs 20] [--episodes 6] [--rollouts 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from scipy.stats import kendalltau

from hwcompress.arch import Genome, build_student
from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import resolve_teacher
from hwcompress.search import SearchConfig, load_search_config, run_search
from hwcompress.train import DistillConfig, TeacherLogits, distill

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR"))
    parser.add_argument("--run", type=Path, default=None, help="a finished run folder")
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--final-epochs", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--distill-epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or RESULTS / f"proxy_fidelity_{args.dataset}.md"
    run = args.run
    if run is None:
        run = Path(tempfile.mkdtemp(prefix="hwc-fidelity-")) / "run"
        run_search(
            SearchConfig(
                profile="x86_host",
                dataset=args.dataset,
                data_dir=args.data_dir,
                episodes=args.episodes,
                rollouts=args.rollouts,
                distill_epochs=args.distill_epochs,
                train_limit=args.train_limit,
                seed=args.seed,
                final_epochs=0,
                out=str(run),
            )
        )
    config = load_search_config(run, {})
    results = json.loads((run / "results.json").read_text())
    cands = [
        c
        for c in results["candidates"]
        if c["status"] == "ok" and not c["genome"].get("weight_bits")
    ]
    # spread over the run: every k-th candidate in journal order
    step = max(1, len(cands) // args.candidates)
    chosen = cands[::step][: args.candidates]
    data = load_data(DataConfig(name=config.dataset, data_dir=config.data_dir, seed=config.seed))
    teacher = resolve_teacher(config.teacher, data, weights=config.teacher_weights).model
    logits = TeacherLogits(teacher, data.train, seed=config.seed)
    recipe = DistillConfig(
        epochs=args.final_epochs, patience=args.final_epochs, seed=config.seed, kd_weight=1.0
    )
    rows = []
    for c in chosen:
        student = build_student(teacher, Genome.from_dict(c["genome"]), data.input_shape)
        final = distill(student, teacher, data, recipe, teacher_logits=logits).val_accuracy
        proxy = next(
            (h["val_accuracy"] for h in c["history"] if h["fidelity"] == 1),
            c["metrics"]["val_accuracy"],
        )
        rows.append((c, proxy, c["metrics"]["val_accuracy"], final))
        print(c["id"], c["fidelity"], f"{proxy:.4f} {rows[-1][2]:.4f} {final:.4f}", flush=True)
    tau_proxy = kendalltau([r[1] for r in rows], [r[3] for r in rows]).statistic
    tau_top = kendalltau([r[2] for r in rows], [r[3] for r in rows]).statistic
    promoted = sum(r[0]["fidelity"] > 1 for r in rows)
    lines = [
        f"# Proxy fidelity on {config.dataset}: does the search's accuracy rank students right?",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only. Run: "
        f"{config.episodes} episodes × {config.rollouts} rollouts, proxy "
        f"{config.distill_epochs} epochs"
        + (f" on {config.train_limit} samples" if config.train_limit else "")
        + f", promotion +{config.promote_epochs} epochs for the best "
        f"{config.promote_fraction:.0%} of each episode. Final: {args.final_epochs} epochs on "
        f"the whole training split from the teacher's weights, soft-target weight 1.",
        "",
        f"{len(rows)} float students ({promoted} promoted to fidelity 2).",
        "",
        "| ranking by | Kendall τ with final val accuracy |",
        "|---|---:|",
        f"| proxy accuracy (fidelity 1, before) | {tau_proxy:+.3f} |",
        f"| highest fidelity reached (after) | {tau_top:+.3f} |",
        "",
        "| candidate | stage | method | params | proxy val | top-fidelity val | final val |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for c, proxy, top, final in rows:
        lines.append(
            f"| {c['id']} | {c['stage']} | {c['method']} | {c['metrics']['params']:,.0f} | "
            f"{proxy:.2%} | {top:.2%} | {final:.2%} |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
