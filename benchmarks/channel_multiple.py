"""The channel step of this host's convolution kernels: latency of one 3×3 convolution layer
(conv + ReLU, as the search's students have) against its channel count.

onnxruntime's x86 NCHWc transformer runs a convolution in a blocked layout whose block is 8
(AVX2) or 16 (AVX-512) channels and pads the channels to it; a count just past a multiple
pays for the whole next block. The table shows the latency per channel count (input and
output channels equal, as in a VGG stage), timed in turn (every count once per round) and
reported as the ratio to the count at the block, so the machine's drift cancels out.

Writes ``benchmarks/results/channel_multiple_<profile>.md`` (``--tag T``: ``..._<T>.md``, to
keep the table of another CPU beside it).

Usage: python benchmarks/channel_multiple.py [--profile x86_host] [--size 28] [--max 48]
       [--tag avx2]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from hwcompress.export import export_fp32
from hwcompress.hardware import load_profile
from hwcompress.hardware.schema import host_channel_block, host_cpu
from hwcompress.measure.latency import measure_local_many

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="x86_host")
    parser.add_argument("--size", type=int, default=28, help="input height and width")
    parser.add_argument("--max", type=int, default=48, help="largest channel count")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--tag", default="", help="suffix of the table's file name")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    counts = list(range(4, args.max + 1, 2))
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for c in counts:
            torch.manual_seed(0)
            model = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU()
            ).eval()
            path = Path(tmp) / f"c{c}.onnx"
            export_fp32(model, (1, c, args.size, args.size), path)
            paths.append(path)
        results = measure_local_many(paths, profile, rounds=args.rounds, runs=5)
    ms = {c: r.median_ms for c, r in zip(counts, results, strict=True)}
    lines = [
        f"# Channel step of two 3×3 conv + ReLU layers at {args.size}×{args.size}, "
        f"profile {args.profile}",
        "",
        f"Machine: {platform.machine()}, {host_cpu()}, {profile.runtime.threads} threads, "
        "onnxruntime "
        f"{profile.runtime.providers[0]}; run {started}; {args.rounds} rounds × 5 inferences, "
        "every count timed in turn. `µs/MAC·1e6` normalises by the layer's MACs: a count that "
        "pads to the next block costs more per useful MAC. The channel multiple `auto` "
        f"resolves to {host_channel_block()} on this CPU.",
        "",
        "| channels | MACs | median ms | ms / ms at 16 | ms per M MACs |",
        "|---:|---:|---:|---:|---:|",
    ]
    ref = ms.get(16, next(iter(ms.values())))
    for c in counts:
        macs = 2 * c * c * 9 * args.size * args.size
        lines.append(
            f"| {c} | {macs / 1e6:.2f} M | {ms[c]:.4f} | {ms[c] / ref:.2f} | "
            f"{ms[c] / (macs / 1e6):.4f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"channel_multiple_{args.profile}{'_' + args.tag if args.tag else ''}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
