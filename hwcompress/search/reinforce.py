"""REINFORCE: each rollout is pushed by its advantage over the episode's mean reward, divided
by the spread of the episode's rewards (a moving-average baseline when an episode has one
rollout)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Reinforce:
    """Policy-gradient updates for one policy.

    Args:
        policy: The policy network.
        lr: Adam learning rate.
        baseline_decay: Weight of the old baseline in the moving average.
    """

    def __init__(self, policy: nn.Module, lr: float = 3e-3, baseline_decay: float = 0.8) -> None:
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
        self.decay = baseline_decay
        self.baseline: float | None = None

    def update(self, log_probs: list[torch.Tensor], rewards: list[float]) -> float:
        """One gradient step on ``−mean(A_i·log π(a_i))``, ``A_i = (R_i − mean R)/std R``;
        then moves the moving-average baseline (used for single-rollout episodes).

        Returns:
            The loss value.
        """
        mean = sum(rewards) / len(rewards)
        b = mean if self.baseline is None else self.baseline
        if len(rewards) > 1:
            # the episode's own mean is the baseline, and the advantages are divided by their
            # spread: N2N's rewards crowd near 1 (Rc saturates), so raw advantages are tiny
            # and a lagging moving average can give every rollout the same sign
            adv = torch.tensor(rewards) - mean
            spread = float(adv.std())
            if spread > 1e-8:
                adv = adv / spread
        else:
            adv = torch.tensor([rewards[0] - b])
        loss = -torch.stack([a * lp for a, lp in zip(adv, log_probs, strict=True)]).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.baseline = (
            mean
            if self.baseline is None
            else (self.decay * self.baseline + (1 - self.decay) * mean)
        )
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        """Policy, optimiser and baseline, loadable with ``weights_only=True``."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline if self.baseline is not None else float("nan"),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.policy.load_state_dict(state["policy"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        b = float(state.get("baseline", float("nan")))
        self.baseline = None if b != b else b
