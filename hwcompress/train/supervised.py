"""Training a classifier from labels (the built-in teachers, ``hwcompress teacher train``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwcompress.train.device import resolve_device
from hwcompress.train.loop import Budget, run_epochs


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Supervised training settings (``device`` and ``amp`` as in
    :class:`~hwcompress.train.DistillConfig`)."""

    epochs: int = 30
    lr: float = 2e-3
    weight_decay: float = 5e-4
    patience: int = 8
    label_smoothing: float = 0.0
    time_budget_s: float | None = None
    seed: int = 0
    device: str = "cpu"
    amp: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


def train_classifier(
    model: nn.Module,
    data: Any,
    config: TrainConfig | None = None,
    *,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> float:
    """Trains ``model`` with cross-entropy, AdamW and a cosine schedule.

    Args:
        model: The model, trained in place; the best epoch by validation accuracy is kept.
        data: A :class:`~hwcompress.data.DataBundle`.
        config: Settings.
        on_epoch: Called with (epoch, mean loss, validation accuracy) after each epoch.

    Returns:
        The best validation accuracy.
    """
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    model.to(resolve_device(config.device))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))

    def step(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch[0], batch[1]
        return F.cross_entropy(model(x).float(), y, label_smoothing=config.label_smoothing)

    stopper = run_epochs(
        model,
        data.train,
        data.val,
        step,
        opt,
        sched,
        Budget(config.epochs, time_budget_s=config.time_budget_s),
        config.patience,
        on_epoch,
        amp=config.amp,
    )
    model.cpu()
    return stopper.best
