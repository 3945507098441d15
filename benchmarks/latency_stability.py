"""How stable is a local onnxruntime latency median? Measure one model 10 times.

Each repetition builds a fresh session (as the search does for every candidate) and takes the
median of its timed runs. Writes the medians and their spread to
``benchmarks/results/latency_stability.md``.

Usage: python benchmarks/latency_stability.py [--model builtin:vgg|PATH.onnx] [--repeats 10]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

from hwcompress.export import export_fp32
from hwcompress.hardware import load_profile
from hwcompress.measure.sources import measure_latency
from hwcompress.models import build_builtin

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:vgg")
    parser.add_argument("--input-shape", default="1,1,28,28")
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "latency_stability.md")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    shape = tuple(int(v) for v in args.input_shape.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        if args.model.startswith("builtin:"):
            net = build_builtin(args.model.split(":", 1)[1], in_channels=shape[1])
            path = export_fp32(net, shape, Path(tmp) / "model.onnx")
        else:
            path = Path(args.model)
        results = [measure_latency(path, profile) for _ in range(args.repeats)]
    medians = [r.median_ms for r in results]
    centre = statistics.median(medians)
    spread = max(abs(m - centre) / centre for m in medians) * 100
    lines = [
        "# Latency stability",
        "",
        f"Model `{args.model}` at input {shape}, profile `{profile.name}` "
        f"({results[0].provider}, {results[0].threads} threads), machine: "
        f"{platform.processor() or platform.machine()}, {platform.system()}.",
        "",
        "| repeat | median ms | p90 ms | min ms | runs |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {i + 1} | {r.median_ms:.4f} | {r.p90_ms:.4f} | {r.min_ms:.4f} | {r.runs} |"
            for i, r in enumerate(results)
        ],
        "",
        f"Median of medians: {centre:.4f} ms; largest deviation from it: **±{spread:.2f}%** "
        f"(target ±5%); max/min ratio {max(medians) / min(medians):.3f}.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
