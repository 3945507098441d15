"""Knowledge distillation from teacher to student, as N2N trains its students.

The loss is ``‖z_s − z_t‖² + λ·CE(z_s, y)`` on logits ``z`` (L2 on logits plus a little
cross-entropy, as the N2N authors recommend). Training is budgeted by epochs, steps and wall
time, stops early when validation accuracy stalls, and restores the best epoch. The teacher's
logits over the training set are computed once (:class:`TeacherLogits`) and shared by every
student of a search, which halves the cost of each step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hwcompress.train.augment import random_shift
from hwcompress.train.device import model_device, resolve_device
from hwcompress.train.loop import Budget, evaluate, run_epochs

__all__ = ["DistillConfig", "DistillResult", "TeacherLogits", "distill", "evaluate"]


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Distillation settings.

    Attributes:
        epochs: Maximum epochs.
        max_steps: Maximum optimiser steps (None: no limit).
        time_budget_s: Wall-clock limit in seconds (None: no limit).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        ce_weight: λ, the weight of the cross-entropy term.
        kd_weight: Weight of an optional soft-target term, ``T²·KL(p_t^T ‖ p_s^T)``
            (Hinton et al.) beside the L2 on logits; 0 (default) is N2N's loss.
        temperature: ``T`` of the soft-target term.
        patience: Epochs without validation improvement before stopping.
        shift: Consistent augmentation: every batch is moved by up to this many pixels
            (:func:`~hwcompress.train.augment.random_shift`) and the teacher's logits are
            computed on the moved images (the teacher runs at each step). 0: the cached
            logits of the images as they are.
        seed: Seed of the shuffling.
        device: Where the student trains (:func:`~hwcompress.train.device.resolve_device`);
            it is handed back on the CPU.
        amp: bfloat16 autocast when ``device`` is a GPU.
    """

    epochs: int = 20
    max_steps: int | None = None
    time_budget_s: float | None = None
    lr: float = 2e-3
    weight_decay: float = 0.0
    ce_weight: float = 0.5
    kd_weight: float = 0.0
    temperature: float = 4.0
    patience: int = 4
    shift: int = 0
    seed: int = 0
    device: str = "cpu"
    amp: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass
class DistillResult:
    """What a distillation run achieved."""

    val_accuracy: float
    best_epoch: int
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


class TeacherLogits:
    """The teacher's logits for every training sample, computed once.

    Args:
        teacher: The teacher.
        train_loader: The training loader (its dataset must be a ``TensorDataset``).
        batch_size: Batch size of the loader built by :meth:`loader`.
        seed: Seed of that loader's shuffling.
    """

    def __init__(self, teacher: nn.Module, train_loader: DataLoader, *, seed: int = 0) -> None:
        dataset = train_loader.dataset
        if not isinstance(dataset, TensorDataset):
            raise TypeError("TeacherLogits needs an in-memory TensorDataset")
        x, y = dataset.tensors[0], dataset.tensors[1]
        teacher.eval()
        device = model_device(teacher)
        with torch.no_grad():
            logits = torch.cat(
                [teacher(x[i : i + 1024].to(device)).float().cpu() for i in range(0, len(x), 1024)]
            )
        self.dataset = TensorDataset(x, y, logits)
        self.batch_size = train_loader.batch_size or 64
        self.seed = seed

    def loader(self, seed: int | None = None) -> DataLoader:
        """A shuffled loader of (x, y, teacher logits) batches.

        Args:
            seed: Seed of the shuffling (default: the one given at construction).
        """
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed if seed is None else seed),
        )


def distill(
    student: nn.Module,
    teacher: nn.Module,
    data: Any,
    config: DistillConfig | None = None,
    *,
    teacher_logits: TeacherLogits | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> DistillResult:
    """Trains ``student`` to reproduce ``teacher``'s logits.

    Args:
        student: Trained in place; ends in eval mode with its best epoch's weights.
        teacher: The teacher (not modified).
        data: A :class:`~hwcompress.data.DataBundle`; validation accuracy comes from
            ``data.val``, never from the test split.
        config: Budget and loss settings.
        teacher_logits: Precomputed teacher logits, shared across students.
        on_epoch: Called with (epoch, mean loss, validation accuracy) after each epoch.

    Returns:
        The best validation accuracy and what it cost.
    """
    config = config or DistillConfig()
    torch.manual_seed(config.seed)
    cached = teacher_logits or TeacherLogits(teacher, data.train, seed=config.seed)
    student.to(resolve_device(config.device))
    opt = torch.optim.Adam(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))
    history: list[dict[str, float]] = []
    online = None
    if config.shift > 0:
        online = copy.deepcopy(teacher).eval().to(resolve_device(config.device))

    def step(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y, z_t = batch
        if online is not None:
            x = random_shift(x, config.shift)
            with torch.no_grad():
                z_t = online(x).float()
        z_s = student(x).float()
        loss = F.mse_loss(z_s, z_t)
        if config.ce_weight:
            loss = loss + config.ce_weight * F.cross_entropy(z_s, y)
        if config.kd_weight:
            t = config.temperature
            soft = F.kl_div(
                F.log_softmax(z_s / t, dim=1),
                F.log_softmax(z_t / t, dim=1),
                log_target=True,
                reduction="batchmean",
            )
            loss = loss + config.kd_weight * t * t * soft
        return loss

    def record(epoch: int, loss: float, acc: float) -> None:
        history.append({"epoch": epoch, "loss": loss, "val_accuracy": acc})
        if on_epoch is not None:
            on_epoch(epoch, loss, acc)

    budget = Budget(config.epochs, config.max_steps, config.time_budget_s)
    stopper = run_epochs(
        student,
        cached.loader(config.seed),
        data.val,
        step,
        opt,
        sched,
        budget,
        config.patience,
        record,
        amp=config.amp,
    )
    student.cpu()
    return DistillResult(
        val_accuracy=stopper.best,
        best_epoch=stopper.best_epoch,
        steps=budget.steps,
        seconds=budget.elapsed(),
        history=history,
    )
