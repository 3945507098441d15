"""How well does a calibrated latency table predict real onnxruntime latency?

Calibrates the profile's per-layer table from random students of the built-in teacher (as
``hwcompress calibrate`` does), then predicts and really measures ``--check`` further random
students and writes each prediction, its error, and the share within ±10 % to
``benchmarks/results/latency_table_<teacher>_<H>x<W>.md``.

Usage: python benchmarks/latency_table.py [--teacher vgg|resnet|torchvision:resnet18]
       [--input-shape 1,1,28,28] [--students 20] [--fit-students 200] [--check 50]
       [--profile x86_host]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from hwcompress.data.teachers import build_teacher
from hwcompress.hardware import load_profile
from hwcompress.measure.calibrate import CalibrateConfig, calibrate
from hwcompress.models import build_builtin

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="vgg")
    parser.add_argument("--input-shape", default="1,1,28,28")
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--fit-students", type=int, default=200)
    parser.add_argument("--check", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--save-table", type=Path, default=None, help="also write the table")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.input_shape.split(","))
    profile = load_profile(args.profile)
    if ":" in args.teacher:
        teacher = build_teacher(args.teacher, 10, shape[1], shape[-1]).eval()
    else:
        teacher = build_builtin(args.teacher, in_channels=shape[1]).eval()
    t0 = time.perf_counter()
    cfg = CalibrateConfig(
        students=args.students,
        fit_students=args.fit_students,
        check=args.check,
        seed=args.seed,
    )
    table, rows = calibrate(
        teacher,
        shape,
        profile,
        cfg,
        progress=lambda m: print(m, flush=True),
    )
    wall = time.perf_counter() - t0
    if args.save_table:
        table.save(args.save_table)
        args.save_table.with_suffix(".check.json").write_text(json.dumps(rows))
    chk = table.meta["check"]
    errors = [r["error"] for r in rows]
    name = args.teacher.replace(":", "_")
    out = args.out or RESULTS / f"latency_table_{name}_{shape[2]}x{shape[3]}.md"
    spec = args.teacher if ":" in args.teacher else f"builtin:{args.teacher}"
    layer_errors = [abs(r["layer_table_ms"] / r["measured_ms"] - 1) for r in rows]
    layer_within = sum(e <= 0.10 for e in layer_errors) / max(len(layer_errors), 1)
    pred = table.meta["predictor"]
    chosen = "kernel-level fit" if pred["chosen"] == "kernels" else "per-layer table sums"
    lines = [
        f"# Latency table vs real measurement — {spec}, input {shape}",
        "",
        f"Profile `{profile.name}` (source measured: {table.meta['source']}, "
        f"{table.meta['provider']}, {table.meta['threads']} thread(s)). Machine: "
        f"{platform.machine()}, {platform.processor() or 'CPU'}, CPU only.",
        f"Calibration: {args.students} random students (+ the teacher) cut into "
        f"{len(table.entries)} distinct layers, each measured alone; "
        f"{max(args.students, args.fit_students)} students measured whole for "
        "the kernel-level fit (features of the graph onnxruntime runs: blocked / generic "
        "convolutions, reorders, padded channels, MACs by output size; a non-negative "
        "linear fit corrected by boosted trees). Calibration scored both predictors on a "
        f"held-out third of those ({pred['held_out']} models: kernel-level fit "
        f"{pred['kernels']:.0%}, layer sums {pred['layers']:.0%} within ±10 %) and kept "
        f"**{chosen}**. The teacher, the fit students and the {args.check} check students "
        f"(never fitted on) were timed whole in turn, {cfg.rounds} rounds × "
        f"{cfg.round_runs} inferences each; a model's latency is the median of its "
        f"{cfg.rounds * cfg.round_runs} inferences. "
        f"Calibration + check took {wall:.0f} s.",
        "",
        f"**Chosen predictor ({chosen}): {chk['within']:.0%} of {chk['models']} predictions "
        "within ±10 %** "
        f"(target ≥ 90 %); median |error| {chk['median_abs_error']:.1%}, worst "
        f"{chk['max_abs_error']:.1%}, mean error {statistics.fmean(errors):+.1%}. "
        f"The per-layer table's sum on the same students: {layer_within:.0%} within ±10 %.",
        "",
        "| student | layers | predicted ms | layer-table ms | measured ms | error |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(rows):
        lines.append(
            f"| {i} | {r['layers']} | {r['predicted_ms']:.4f} | {r['layer_table_ms']:.4f} | "
            f"{r['measured_ms']:.4f} | {r['error']:+.1%} |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
