"""Search methods: how genomes are proposed and how feedback is used, per stage.

``n2n`` samples from the N2N policies and updates them with REINFORCE; ``random`` samples
uniformly with the same budget and evaluation (the baseline); ``drl-prune`` (Zhan et al.)
prunes channels with the DDPG agent of :mod:`hwcompress.search.ddpg` and kernels with
:mod:`hwcompress.prune.kernel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from hwcompress.search.names import StageName
from hwcompress.search.policies import POLICIES, WIDTH_CHOICES, Sample, demonstration_target
from hwcompress.search.reinforce import Reinforce


class StageController(Protocol):
    """Proposes actions for one stage and learns from their rewards."""

    def sample(self, features: torch.Tensor, generator: torch.Generator) -> Sample: ...

    def update(self, samples: list[Sample], rewards: list[float]) -> float | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PolicyController:
    """N2N: an LSTM policy trained with REINFORCE."""

    #: Where latency steers a target run, its proposals are screened before training
    #: (:mod:`hwcompress.search.screen`).
    screens = True

    def __init__(self, stage: str, choices: tuple[float, ...] = (), lr: float = 3e-2) -> None:
        self.stage = stage
        self.policy = POLICIES[stage](choices=choices) if choices else POLICIES[stage]()
        self.learner = Reinforce(self.policy, lr=lr)

    def sample(self, features: torch.Tensor, generator: torch.Generator) -> Sample:
        return self.policy.sample(features, generator)  # type: ignore[operator,no-any-return]

    def update(self, samples: list[Sample], rewards: list[float]) -> float | None:
        return self.learner.update([s.log_prob for s in samples], rewards)

    def imitate(
        self,
        demos: list[tuple[torch.Tensor, list[int]]],
        steps: int = 100,
        lr: float = 1e-2,
    ) -> float:
        """Starts the policy near demonstrated action sequences (the run's best student so
        far of each structure it decides for, given as that structure's features and the
        student's actions): per step, most of the probability on the demonstrated choice,
        some on its neighbours, the rest spread
        (:func:`~hwcompress.search.policies.demonstration_target`), so REINFORCE explores
        around them rather than from uniform (random search's distribution).

        Returns:
            The final KL divergence from the target distributions (summed over steps and
            demonstrations).
        """
        step_log_probs = getattr(self.policy, "step_log_probs", None)
        demos = [(f, a) for f, a in demos if a]
        if step_log_probs is None or not demos:
            return 0.0
        k = len(getattr(self.policy, "choices", ())) or 2  # removal: remove or keep
        targets = [
            torch.stack([demonstration_target(a, k) for a in actions]) for _, actions in demos
        ]
        optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        kl = torch.zeros(())
        for _ in range(steps):
            kl = sum(
                (
                    (target * (target.clamp_min(1e-12).log() - step_log_probs(f, a))).sum()
                    for (f, a), target in zip(demos, targets, strict=True)
                ),
                torch.zeros(()),
            )
            optimizer.zero_grad()
            kl.backward()
            optimizer.step()
        return float(kl.detach())

    def state_dict(self) -> dict[str, Any]:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)


class RandomController:
    """Uniform sampling: keep/remove with probability ½, widths uniformly."""

    def __init__(self, stage: str, choices: tuple[float, ...] = ()) -> None:
        self.stage = stage
        self.n_choices = len(choices) or len(WIDTH_CHOICES)

    def sample(self, features: torch.Tensor, generator: torch.Generator) -> Sample:
        n = features.shape[0]
        if self.stage == StageName.REMOVAL:
            actions = (torch.rand(n, generator=generator) < 0.5).long().tolist()
        else:
            actions = torch.randint(self.n_choices, (n,), generator=generator).tolist()
        return Sample(actions, torch.zeros(()))

    def update(self, samples: list[Sample], rewards: list[float]) -> float | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


METHODS: dict[str, Callable[..., StageController]] = {
    "n2n": PolicyController,
    "random": RandomController,
    # drl-prune's channel stage uses the DDPG agent (built by the runner, which knows the
    # MACs budget); its quantization stage uses the same bit-width policy as n2n.
    "drl-prune": PolicyController,
}
