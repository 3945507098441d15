"""The Python API directly: profile, teacher, one hand-made student, distillation, export,
measurement and the constraint check — the pieces a search runs for every candidate.

    python examples/python_api.py
    python examples/python_api.py --tiny
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import resolve_teacher
from hwcompress.export import export_fp32
from hwcompress.hardware import ConstraintMatrix, load_profile
from hwcompress.measure import analyze_module
from hwcompress.measure.sources import measure_latency
from hwcompress.train import DistillConfig, distill, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="raspberry_pi5")
    parser.add_argument("--tiny", action="store_true", help="tiny settings (tests)")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    data = load_data(DataConfig(train_limit=300 if args.tiny else None))
    teacher = resolve_teacher("builtin:vgg", data).model
    spec = build_spec(teacher, data.input_shape)
    print("removable units:", [u.name for u in spec.removable])
    print("channel groups:", [(g.key, g.channels) for g in spec.shrinkable])
    # drop the last two convolutions and halve every remaining group
    genome = Genome(
        keep={u.name: False for u in spec.removable[-2:]},
        width={g.key: 0.5 for g in spec.shrinkable},
    )
    student = build_student(teacher, genome, data.input_shape, spec=spec)
    distill(student, teacher, data, DistillConfig(epochs=1 if args.tiny else 10))
    stats = analyze_module(student, data.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_fp32(student, data.input_shape, Path(tmp) / "student.onnx")
        latency = measure_latency(path, profile, runs=5 if args.tiny else None)
    metrics = {**stats.metrics(profile), "latency_ms": latency.median_ms}
    matrix = ConstraintMatrix.from_profile(profile)
    print(
        f"student: {stats.params} parameters, {evaluate(student, data.val):.2%} validation "
        f"accuracy (teacher {evaluate(teacher, data.val):.2%}), {latency.median_ms:.4f} ms"
    )
    for row in matrix.report(metrics):
        print(f"  {row['name']}: {'ok' if row['ok'] else 'VIOLATED'} (slack {row['slack']:.4g})")


if __name__ == "__main__":
    main()
