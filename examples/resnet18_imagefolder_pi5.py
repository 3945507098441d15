"""Compress a torchvision ResNet-18 trained on your own ImageFolder data, for a Raspberry Pi 5.

    python examples/resnet18_imagefolder_pi5.py --data path/to/images --out runs/pi5
    python examples/resnet18_imagefolder_pi5.py --tiny --out /tmp/pi5   # builds its own images

``--data`` is a folder with one sub-folder of images per class (optionally inside
``train/`` and ``test/``). The teacher is trained first (or pass ``--teacher-weights``, a
``state_dict`` file), then searched for the Pi 5 profile. ``--tiny`` writes a small
ImageFolder of the built-in digits and uses tiny settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import build_teacher
from hwcompress.search import SearchConfig, run_search
from hwcompress.train import TrainConfig, evaluate, train_classifier


def write_digit_folder(root: Path, per_class: int = 30) -> Path:
    """A small ImageFolder of the built-in digits (PNG, 8×8 grey), for trying the example."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts: dict[int, int] = {}
    for image, label in zip(digits.images, digits.target, strict=True):
        if counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image * 255 / 16).astype("uint8")
        Image.fromarray(pixels, mode="L").convert("RGB").save(folder / f"{counts[label]}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="ImageFolder root")
    parser.add_argument("--teacher-weights", default=None)
    parser.add_argument("--out", default="runs/pi5")
    parser.add_argument("--tiny", action="store_true", help="tiny settings (tests)")
    args = parser.parse_args()
    data_root = args.data or write_digit_folder(Path(args.out) / "images")
    dataset = f"imagefolder:{data_root}"
    weights = args.teacher_weights
    if weights is None:  # train the teacher on the user's data first
        data = load_data(DataConfig(name=dataset))
        teacher = build_teacher(
            "torchvision:resnet18", data.num_classes, data.in_channels, data.image_shape[-1]
        )
        train_classifier(teacher, data, TrainConfig(epochs=1 if args.tiny else 20))
        print(f"teacher validation accuracy: {evaluate(teacher, data.val):.2%}")
        weights = str(Path(args.out) / "teacher.pt")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        torch.save(teacher.state_dict(), weights)
    size = (
        dict(
            episodes=1,
            rollouts=2,
            distill_epochs=1,
            latency_runs=5,
            final_epochs=0,
            seed_ratios=(8.0,),
        )
        if args.tiny
        else dict(episodes=10, rollouts=4, final_epochs=20)
    )
    result = run_search(
        SearchConfig(
            profile="raspberry_pi5",
            teacher="torchvision:resnet18",
            teacher_weights=weights,
            dataset=dataset,
            out=str(Path(args.out) / "search"),
            **size,
        )
    )
    assert result.best is not None, "no candidate could be evaluated; see results.json"
    print(f"best student: {result.best.metrics['compression']:.1f}× fewer parameters")


if __name__ == "__main__":
    main()
