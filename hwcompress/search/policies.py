"""The N2N policies: a bidirectional LSTM for layer removal, an autoregressive LSTM for
layer shrinkage. Both map a sequence of layer features to a sampled action per step and the
summed log-probability REINFORCE needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hwcompress.search.features import FEATURE_DIM
from hwcompress.search.names import StageName

#: The discrete width factors the shrinkage policy chooses from.
WIDTH_CHOICES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class Sample:
    """One rollout: the actions and their summed log-probability (with grad)."""

    actions: list[int]
    log_prob: torch.Tensor


class RemovalPolicy(nn.Module):
    """Reads the whole layer sequence in both directions and emits keep (1) / remove (0).

    Args:
        hidden: LSTM hidden size per direction.
        keep_bias: Initial logit of "keep". 0 starts at keep probability ½, the random
            baseline's distribution, so that learning starts where random search stands
            (a bias toward keeping wastes the first episodes on barely compressed students).
    """

    def __init__(self, hidden: int = 32, keep_bias: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(FEATURE_DIM, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, keep_bias)

    def probs(self, features: torch.Tensor) -> torch.Tensor:
        """Keep probability per step, shape ``(steps,)``."""
        out, _ = self.lstm(features.unsqueeze(0))
        return torch.sigmoid(self.head(out)).reshape(-1)

    def sample(self, features: torch.Tensor, generator: torch.Generator) -> Sample:
        """Samples keep/remove for every step."""
        p = self.probs(features)
        u = torch.rand(p.shape, generator=generator)
        actions = (u < p.detach()).long()
        dist = torch.distributions.Bernoulli(probs=p.clamp(1e-6, 1 - 1e-6))
        return Sample(actions.tolist(), dist.log_prob(actions.float()).sum())

    def step_log_probs(self, features: torch.Tensor, actions: list[int]) -> torch.Tensor:
        """Each step's log-probabilities of remove (column 0) and keep (column 1); the steps
        are independent given the features, so ``actions`` does not change them.

        Returns:
            Shape ``(steps, 2)``.
        """
        logit = self.head(self.lstm(features.unsqueeze(0))[0]).reshape(-1)
        log_sigmoid = nn.functional.logsigmoid
        return torch.stack([log_sigmoid(-logit), log_sigmoid(logit)], dim=1)


class ShrinkPolicy(nn.Module):
    """Emits a width factor per step, each conditioned on the previous choice."""

    def __init__(self, hidden: int = 64, choices: tuple[float, ...] = WIDTH_CHOICES) -> None:
        super().__init__()
        self.choices = choices
        self.cell = nn.LSTMCell(FEATURE_DIM + len(choices), hidden)
        self.head = nn.Linear(hidden, len(choices))

    def _unroll(
        self, features: torch.Tensor, choose: Callable[[int, torch.Tensor], int]
    ) -> tuple[list[int], list[torch.Tensor]]:
        """Runs the LSTM over the steps; ``choose(t, logits)`` picks step ``t``'s choice,
        which the next step is conditioned on.

        Returns:
            The choices and each step's logits.
        """
        k = len(self.choices)
        state = None  # zeros
        prev = k - 1  # "full width" before the first step
        actions: list[int] = []
        rows: list[torch.Tensor] = []
        for t in range(features.shape[0]):
            one_hot = torch.zeros(1, k)
            one_hot[0, prev] = 1.0
            h, c = self.cell(torch.cat([features[t : t + 1], one_hot], dim=1), state)
            state = (h, c)
            logits = self.head(h)[0]
            prev = choose(t, logits)
            actions.append(prev)
            rows.append(logits)
        return actions, rows

    def sample(self, features: torch.Tensor, generator: torch.Generator) -> Sample:
        """Samples a width index for every step, autoregressively."""

        def draw(_t: int, logits: torch.Tensor) -> int:
            probs = torch.softmax(logits, dim=0).detach()
            return int(torch.multinomial(probs, 1, generator=generator))

        actions, rows = self._unroll(features, draw)
        log_prob = torch.zeros(())
        for logits, a in zip(rows, actions, strict=True):
            log_prob = log_prob + torch.log_softmax(logits, dim=0)[a]
        return Sample(actions, log_prob)

    def teacher_forced_logits(self, features: torch.Tensor, actions: list[int]) -> torch.Tensor:
        """The logits of every step when the previous choices were ``actions``.

        Returns:
            Shape ``(steps, choices)``.
        """
        _, rows = self._unroll(features, lambda t, _logits: actions[t])
        return torch.stack(rows)

    def step_log_probs(self, features: torch.Tensor, actions: list[int]) -> torch.Tensor:
        """Each step's log-probabilities over the choices when the previous choices were
        ``actions`` (teacher forcing).

        Returns:
            Shape ``(steps, choices)``.
        """
        return torch.log_softmax(self.teacher_forced_logits(features, actions), dim=1)


#: Under a demonstration, the probability the removal policy gives each unit's demonstrated
#: keep/remove decision: with the 4–12 removable units of a small CNN, a sample departs from
#: the demonstration in one or two units (a local search around the best structure so far),
#: where an even chance would redraw half of them (random search's distribution).
BINARY_SHARE = 0.85


def demonstration_target(
    action: int, choices: int, share: float = 0.5, near: float = 0.35
) -> torch.Tensor:
    """A distribution over ``choices`` centred on ``action``: ``share`` on it, ``near`` split
    between its neighbours and the rest spread over the other choices (the policy keeps
    exploring around the demonstration, mostly one step away: a far jump in one layer can
    double the student's size). With two choices (keep or remove) the demonstrated one
    gets :data:`BINARY_SHARE`.
    """
    if choices == 1:
        return torch.ones(1)
    if choices == 2:
        target = torch.full((2,), 1.0 - BINARY_SHARE)
        target[action] = BINARY_SHARE
        return target
    neighbours = [a for a in (action - 1, action + 1) if 0 <= a < choices]
    others = [a for a in range(choices) if a != action and a not in neighbours]
    target = torch.zeros(choices)
    target[action] = share
    rest = 1.0 - share
    if others:
        target[others] = (rest - near) / len(others)
        rest = near
    target[neighbours] = rest / len(neighbours)
    return target


class BitWidthPolicy(ShrinkPolicy):
    """Emits a weight bit-width per conv/linear layer, each conditioned on the previous one.

    Args:
        choices: The bit-widths the device supports (e.g. ``(4, 8)`` for an MCU).
    """

    def __init__(self, hidden: int = 64, choices: tuple[float, ...] = (2, 4, 6, 8)) -> None:
        super().__init__(hidden=hidden, choices=choices)


#: Policy factories by stage name; each takes the stage's action choices.
POLICIES: dict[str, Callable[..., nn.Module]] = {
    StageName.REMOVAL: RemovalPolicy,
    StageName.SHRINKAGE: ShrinkPolicy,
    StageName.QUANTIZATION: BitWidthPolicy,
}


def grid_widths(widths: list[float], size: Callable[[list[int]], float], limit: float) -> list[int]:
    """The policy's width choices (indices into ``WIDTH_CHOICES``) closest to ``widths``
    whose student is no larger than ``limit``.

    Rounding each width to its nearest choice can give a much larger student than the one
    demonstrated (parameters grow with the square of the width, so rounding 0.35 up to 0.4
    adds 30 % to a layer), and the policy would then explore around a student that loses
    compression the demonstrated one had. Each width starts at the choice at or below it and
    is raised, closest first, while the student stays within ``limit``.

    Args:
        widths: The demonstrated width multiplier of each item.
        size: The student's size for a list of choice indices.
        limit: The demonstrated student's size.
    """
    top = len(WIDTH_CHOICES) - 1
    choice = [
        max((i for i, c in enumerate(WIDTH_CHOICES) if c <= w + 1e-9), default=0) for w in widths
    ]
    up = [
        i for i, w in enumerate(widths) if choice[i] < top and WIDTH_CHOICES[choice[i]] < w - 1e-9
    ]
    for i in sorted(up, key=lambda i: WIDTH_CHOICES[choice[i] + 1] - widths[i]):
        trial = list(choice)
        trial[i] += 1
        if size(trial) <= limit:
            choice = trial
    return choice
