"""Candidates per minute on the CPU and, where PyTorch sees one, on a CUDA GPU.

A torchvision ResNet-18 teacher (random weights: throughput does not depend on them) on
Fashion-MNIST resized to 32×32, compressed through :func:`hwcompress.compress` with the same
settings on each device; a candidate is a full evaluation (build, distillation, export,
onnxruntime latency). Writes ``benchmarks/results/device_resnet18_fashion_mnist.md``.

Usage: python benchmarks/device.py [--data-dir ../shared/datasets] [--samples 4000]
       [--devices cpu,cuda] [--episodes 2] [--rollouts 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import hwcompress
from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import build_teacher

RESULTS = Path(__file__).parent / "results"


def _loader(loader: DataLoader, batch_size: int, shuffle: bool) -> DataLoader:
    x, y = loader.dataset.tensors[:2]  # type: ignore[attr-defined]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HWCOMPRESS_DATA_DIR"))
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "device_resnet18_fashion_mnist.md")
    args = parser.parse_args()
    data = load_data(
        DataConfig(name="fashion_mnist", data_dir=args.data_dir, train_limit=args.samples)
    )
    train = _loader(data.train, 64, True)
    val = _loader(data.val, 256, False)
    rows = []
    for device in args.devices.split(","):
        if device.startswith("cuda") and not torch.cuda.is_available():
            rows.append((device, None, None, "no CUDA GPU visible to PyTorch on this machine"))
            continue
        torch.manual_seed(0)
        teacher = build_teacher("torchvision:resnet18", 10, 1, 32).eval()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = hwcompress.compress(
                teacher,
                train,
                val,
                profile="x86_host",
                out=Path(tmp) / "run",
                device=device,
                episodes=args.episodes,
                rollouts=args.rollouts,
                distill_epochs=1,
                seed_ratios=(4.0, 16.0),
                promote_epochs=0,
                final_epochs=0,
                latency_runs=5,
            )
            wall = time.perf_counter() - t0
        n = len(result.search.candidates)
        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
        rows.append((device, n, wall, name))
    lines = [
        "# Candidates per minute by training device — torchvision ResNet-18, Fashion-MNIST 32×32",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}. "
        f"{args.samples} training images, {args.episodes} episodes × {args.rollouts} rollouts "
        "per stage (removal, shrinkage) plus 4 seeds, 1 distillation epoch per candidate, "
        "latency with onnxruntime on the CPU (x86_host) whatever the training device.",
        "",
        "| device | what | candidates | wall s | candidates / min |",
        "|---|---|---:|---:|---:|",
    ]
    for device, n, wall, what in rows:
        if n is None:
            lines.append(f"| {device} | {what} | — | — | — |")
        else:
            lines.append(f"| {device} | {what} | {n} | {wall:.0f} | {60 * n / wall:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
