"""``hwcompress teacher train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hwcompress.cli.app import console, teacher_app


@teacher_app.command("train")
def teacher_train(
    teacher: Annotated[
        str, typer.Option(help="builtin:NAME, torchvision:NAME or module.path:factory.")
    ] = "builtin:vgg",
    dataset: Annotated[
        str,
        typer.Option(
            help="digits, mnist, fashion_mnist, cifar10, cifar100, svhn or imagefolder:PATH."
        ),
    ] = "digits",
    data_dir: Annotated[
        str | None,
        typer.Option(help="Folder holding torchvision datasets (default $HWCOMPRESS_DATA_DIR)."),
    ] = None,
    download: Annotated[bool, typer.Option(help="Allow downloading the dataset.")] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-3,
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path, typer.Option(help="Checkpoint to write.")] = Path("teacher.pt"),
    device: Annotated[
        str, typer.Option(help="Where training runs: auto, cpu, cuda or cuda:N.")
    ] = "auto",
) -> None:
    """Train a teacher on a dataset and save it (weights + accuracy) as a checkpoint."""
    from hwcompress.data import DataConfig, load_data
    from hwcompress.data.teachers import build_teacher, save_checkpoint
    from hwcompress.train import TrainConfig, evaluate, train_classifier

    data = load_data(
        DataConfig(
            name=dataset, data_dir=data_dir, download=download, batch_size=batch_size, seed=seed
        )
    )
    model = build_teacher(teacher, data.num_classes, data.in_channels, data.image_shape[-1])
    from hwcompress.train.device import resolve_device

    config = TrainConfig(epochs=epochs, lr=lr, seed=seed, device=str(resolve_device(device)))
    with console.status(f"Training {teacher} on {dataset}") as status:

        def on_epoch(epoch: int, loss: float, acc: float) -> None:
            status.update(
                f"Training {teacher} on {dataset}: epoch {epoch + 1}/{epochs}, "
                f"loss {loss:.4f}, validation accuracy {acc:.2%}"
            )

        train_classifier(model, data, config, on_epoch=on_epoch)
    acc = {"val": evaluate(model, data.val), "test": evaluate(model, data.test)}
    save_checkpoint(
        model,
        out,
        {"spec": teacher, "dataset": dataset, "accuracy": acc, "train": config.to_dict()},
    )
    console.print(
        f"{teacher} on {dataset}: validation {acc['val']:.2%}, test {acc['test']:.2%} → {out}"
    )
