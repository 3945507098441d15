"""Pieces shared by supervised training and distillation: evaluation, budgets, early stop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from hwcompress.train.device import autocast, model_device, to_device

if TYPE_CHECKING:
    from hwcompress.train.device import Batch


def evaluate(model: nn.Module, loader: Iterable[Batch]) -> float:
    """Top-1 accuracy of ``model`` on ``loader`` (the model is left in eval mode).

    ``loader`` is a ``DataLoader`` or any iterable of ``(inputs, labels, ...)`` batches.
    """
    return evaluate_with_loss(model, loader)[0]


@torch.no_grad()
def evaluate_with_loss(model: nn.Module, loader: Iterable[Batch]) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``loader`` (left in eval mode)."""
    model.eval()
    device = model_device(model)
    correct = total = 0
    loss = 0.0
    for batch in loader:
        x, y = to_device(batch[:2], device)
        logits = model(x).float()
        correct += int((logits.argmax(dim=1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        total += len(y)
    return correct / max(total, 1), loss / max(total, 1)


@dataclass
class Budget:
    """Stops training at a step count, a wall-clock limit or an epoch count."""

    epochs: int
    max_steps: int | None = None
    time_budget_s: float | None = None
    steps: int = 0
    start: float = field(default_factory=time.perf_counter)

    def exhausted(self) -> bool:
        """True once any limit is reached."""
        if self.max_steps is not None and self.steps >= self.max_steps:
            return True
        return self.time_budget_s is not None and self.elapsed() >= self.time_budget_s

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.perf_counter() - self.start


@dataclass
class EarlyStopper:
    """Keeps the best weights by validation accuracy, ties broken by the lower validation
    loss; stops after ``patience`` epochs without either.

    The tie-break matters where the validation split is small and saturates (digits: 143
    images, every student at 100 % after two epochs): ranked by accuracy alone, the first
    epoch to reach it was kept, however far from trained, and one student's test accuracy
    then moved by 1.7 points from seed to seed.
    """

    patience: int
    best: float = -1.0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, model: nn.Module, accuracy: float, epoch: int, loss: float = math.inf) -> bool:
        """Records an epoch's validation accuracy (and loss). Returns True when training
        should stop."""
        if accuracy > self.best or (accuracy == self.best and loss < self.best_loss):
            self.best, self.best_loss, self.best_epoch, self.bad_epochs = (
                accuracy,
                loss,
                epoch,
                0,
            )
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Loads the best weights seen back into ``model``."""
        if self.state is not None:
            model.load_state_dict(self.state)


def run_epochs(
    model: nn.Module,
    loader: DataLoader,
    val: DataLoader,
    step: Callable[[tuple[torch.Tensor, ...]], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: object | None,
    budget: Budget,
    patience: int,
    on_epoch: Callable[[int, float, float], None] | None = None,
    *,
    amp: bool = False,
) -> EarlyStopper:
    """The shared loop: epochs of ``step`` losses, validation, early stop, best restored.

    Batches are moved to the model's device; ``amp`` runs the steps under bfloat16 autocast
    there when it is a GPU.
    """
    stopper = EarlyStopper(patience)
    device = model_device(model)
    for epoch in range(budget.epochs):
        model.train()
        losses = []
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, amp):
                loss = step(to_device(batch, device))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            budget.steps += 1
            if budget.exhausted():
                break
        if scheduler is not None:
            scheduler.step()  # type: ignore[attr-defined]
        acc, val_loss = evaluate_with_loss(model, val)
        if on_epoch is not None:
            on_epoch(epoch, sum(losses) / max(len(losses), 1), acc)
        if stopper.update(model, acc, epoch, val_loss) or budget.exhausted():
            break
    stopper.restore(model)
    model.eval()
    return stopper
