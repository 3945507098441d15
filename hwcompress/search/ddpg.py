"""The channel-pruning agent of Zhan et al.: a continuous-action actor-critic (DDPG-style).

The agent walks the network's shrinkable channel groups in execution order. At each one it
sees a state — the group's static features (kind, channels, kernel, stride, padding, share
of the parameters), its position, its share of the teacher's multiply-accumulates (MACs),
the MACs removed so far, the MACs budget still left and its previous action — and emits a
keep ratio in ``[min_keep, 1]``. As in AMC (He et al., 2018) the action is clamped so that
the budget stays reachable: whatever the agent chose so far, keeping ``min_keep`` of every
later group must still meet the MACs target, so every student it proposes honours the
budget by construction. The channels kept are the most important ones (surgery's L1 rule,
equal across residual adds and other tied groups).

Learning: each rollout is one episode whose single reward (the search reward, accuracy ×
FLOPs compression, −1 for a student that breaks the profile's ``A·x ≤ b``) is given to every
step, less a moving-average baseline. With one terminal reward shared by all steps the
critic's target is that reward itself (a Monte-Carlo target), so no bootstrapped target
network is needed; the actor follows the critic's gradient (deterministic policy gradient).
Exploration is truncated Gaussian noise around the actor's action, decaying per episode,
after warm-up rollouts of uniform random actions that fill the replay buffer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hwcompress.arch.genome import Genome
from hwcompress.arch.spec import ArchSpec
from hwcompress.errors import ConfigError
from hwcompress.search.features import FEATURE_DIM
from hwcompress.search.policies import Sample

#: Dynamic state entries after the static features: position, MACs share, MACs removed so
#: far, budget left, previous action.
STATE_DIM = FEATURE_DIM + 5


@dataclass(frozen=True, kw_only=True)
class DDPGConfig:
    """Settings of the channel-pruning agent.

    Attributes:
        hidden: Hidden units of the actor's and the critic's two layers.
        actor_lr: Adam learning rate of the actor.
        critic_lr: Adam learning rate of the critic.
        min_keep: Smallest keep ratio of a group.
        warmup: Rollouts with uniformly random actions before the actor acts.
        noise: Initial standard deviation of the exploration noise.
        noise_decay: Factor applied to the noise after every episode.
        baseline_decay: Decay of the moving-average reward baseline.
        batch_size: Transitions per update.
        updates: Gradient steps per episode.
        buffer_size: Transitions kept in the replay buffer.
    """

    hidden: int = 64
    actor_lr: float = 1e-3
    critic_lr: float = 3e-3
    min_keep: float = 0.1
    warmup: int = 4
    noise: float = 0.5
    noise_decay: float = 0.9
    baseline_decay: float = 0.9
    batch_size: int = 64
    updates: int = 50
    buffer_size: int = 4000

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, out),
    )


class Actor(nn.Module):
    """State → keep ratio in ``[min_keep, 1]``."""

    def __init__(self, hidden: int = 64, min_keep: float = 0.1) -> None:
        super().__init__()
        self.net = _mlp(STATE_DIM, hidden, 1)
        self.min_keep = min_keep

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.net(state)).squeeze(-1)
        return self.min_keep + (1.0 - self.min_keep) * a


class Critic(nn.Module):
    """(state, action) → expected (baseline-subtracted) episode reward."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = _mlp(STATE_DIM + 1, hidden, 1)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, action.unsqueeze(-1)], dim=-1)).squeeze(-1)


def with_widths(
    base: Genome, keys: list[str], ratios: list[float], *, complete: bool = False
) -> Genome:
    """``base`` with the first ``len(ratios)`` of ``keys`` set to these keep ratios
    (``complete``: one ratio per key is required)."""
    width = dict(base.width)
    width.update({k: float(r) for k, r in zip(keys, ratios, strict=complete) if r != 1.0})
    return Genome(keep=dict(base.keep), width=width, kernel=dict(base.kernel))


class MacsBudget:
    """Predicts MACs of partial genomes and clamps keep ratios so the target stays reachable.

    Args:
        spec: The teacher's spec.
        base: The genome the stage starts from (removals and kernels kept).
        keys: The channel groups decided on, in order.
        target: The MACs every proposed student must stay within.
        min_keep: Smallest keep ratio.

    Raises:
        ConfigError: If even keeping ``min_keep`` of every group misses the target.
    """

    def __init__(
        self, spec: ArchSpec, base: Genome, keys: list[str], target: float, min_keep: float
    ) -> None:
        self.spec, self.base, self.keys = spec, base, keys
        self.target, self.min_keep = float(target), min_keep
        self.channels = {g.key: g.channels for g in spec.groups}
        self.full = spec.predict_macs(base)
        smallest = self.macs([self.snap(k, min_keep) for k in keys])
        if smallest > self.target:
            raise ConfigError(
                f"the MACs target {self.target:,.0f} is below the smallest student the channel "
                f"agent can build ({smallest:,.0f} MACs at keep ratio {min_keep}); raise "
                "{flops_target} or the profile's MACs budget"
            )
        # each group's MACs share: what halving it alone saves, relative to the base
        self.share = [
            (self.full - self.macs([0.5 if j == i else 1.0 for j in range(len(keys))]))
            / max(self.full, 1)
            for i in range(len(keys))
        ]

    def snap(self, key: str, ratio: float) -> float:
        """The ratio rounded to a whole number of channels (so equal students share a key)."""
        c = self.channels[key]
        n = max(1, round(ratio * c), math.ceil(self.min_keep * c - 1e-9))
        return min(n, c) / c

    def genome(self, ratios: list[float]) -> Genome:
        """The base genome with the first ``len(ratios)`` groups at these ratios."""
        return with_widths(self.base, self.keys, ratios)

    def macs(self, ratios: list[float]) -> int:
        """Predicted MACs with the first groups at ``ratios`` and the rest untouched."""
        return self.spec.predict_macs(self.genome(ratios))

    def clamp(self, chosen: list[float], ratio: float) -> float:
        """The largest ratio ≤ ``ratio`` for the next group that keeps the target reachable."""
        rest = [self.snap(k, self.min_keep) for k in self.keys[len(chosen) + 1 :]]
        key = self.keys[len(chosen)]

        def fits(r: float) -> bool:
            return self.macs([*chosen, self.snap(key, r), *rest]) <= self.target

        ratio = max(self.min_keep, min(1.0, ratio))
        if fits(ratio):
            return self.snap(key, ratio)
        lo, hi = self.min_keep, ratio  # fits(lo) holds by induction
        for _ in range(20):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        r = self.snap(key, lo)
        while r > self.min_keep and not fits(r):
            r = self.snap(key, r - 1 / self.channels[key])
        return r

    def state(self, static: torch.Tensor, chosen: list[float], prev: float) -> torch.Tensor:
        """The agent's state before deciding group ``len(chosen)``."""
        i = len(chosen)
        rest_min = [self.snap(k, self.min_keep) for k in self.keys[i:]]
        removed = (self.full - self.macs(chosen)) / max(self.full, 1)
        left = (self.target - self.macs([*chosen, *rest_min])) / max(self.full, 1)
        dyn = [i / max(len(self.keys) - 1, 1), self.share[i], removed, left, prev]
        return torch.cat([static[i], torch.tensor(dyn, dtype=torch.float32)])


@dataclass
class AgentSample(Sample):
    """A rollout of the agent: keep ratios plus the states they were chosen in."""

    states: torch.Tensor | None = None
    raw: torch.Tensor | None = None


class DDPGController:
    """The channel stage's controller (see the module docstring).

    Args:
        budget: MACs bookkeeping of the stage.
        config: Agent settings.
        seed: Seed of the networks' initialisation and of the replay sampling.
    """

    def __init__(self, budget: MacsBudget, config: DDPGConfig | None = None, seed: int = 0) -> None:
        self.budget = budget
        self.config = config or DDPGConfig()
        torch.manual_seed(seed)
        self.actor = Actor(self.config.hidden, self.config.min_keep)
        self.critic = Critic(self.config.hidden)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr)
        self.states = torch.zeros(0, STATE_DIM)
        self.actions = torch.zeros(0)
        self.targets = torch.zeros(0)
        self.rollouts = 0
        self.episodes = 0
        self.baseline: float | None = None
        self.seed = seed

    @property
    def noise(self) -> float:
        """Current exploration noise."""
        return self.config.noise * self.config.noise_decay**self.episodes

    def sample(self, features: torch.Tensor, generator: torch.Generator) -> AgentSample:
        """Walks the groups once; returns keep ratios that honour the MACs budget."""
        cfg = self.config
        chosen: list[float] = []
        states: list[torch.Tensor] = []
        raw: list[float] = []
        prev = 1.0
        explore = self.rollouts < cfg.warmup
        for _ in self.budget.keys:
            s = self.budget.state(features, chosen, prev)
            if explore:
                a = cfg.min_keep + (1 - cfg.min_keep) * float(torch.rand((), generator=generator))
            else:
                with torch.no_grad():
                    mu = float(self.actor(s))
                a = _truncated_normal(mu, self.noise, cfg.min_keep, 1.0, generator)
            r = self.budget.clamp(chosen, a)
            states.append(s)
            raw.append(r)
            chosen.append(r)
            prev = r
        self.rollouts += 1
        return AgentSample(
            actions=chosen,  # type: ignore[arg-type]
            log_prob=torch.zeros(()),
            states=torch.stack(states) if states else torch.zeros(0, STATE_DIM),
            raw=torch.tensor(raw, dtype=torch.float32),
        )

    def update(self, samples: list[Sample], rewards: list[float]) -> float | None:
        """Stores the episode's transitions and trains critic and actor."""
        cfg = self.config
        for sample, r in zip(samples, rewards, strict=True):
            assert isinstance(sample, AgentSample) and sample.states is not None
            assert sample.raw is not None
            if self.baseline is None:
                self.baseline = r
            adv = r - self.baseline
            self.baseline = cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * r
            n = sample.states.shape[0]
            self.states = torch.cat([self.states, sample.states])[-cfg.buffer_size :]
            self.actions = torch.cat([self.actions, sample.raw])[-cfg.buffer_size :]
            self.targets = torch.cat([self.targets, torch.full((n,), adv)])[-cfg.buffer_size :]
        self.episodes += 1
        if self.rollouts < cfg.warmup or self.states.shape[0] == 0:
            return None
        gen = torch.Generator().manual_seed(self.seed * 7919 + self.episodes)
        loss = 0.0
        for _ in range(cfg.updates):
            idx = torch.randint(self.states.shape[0], (cfg.batch_size,), generator=gen)
            s, a, y = self.states[idx], self.actions[idx], self.targets[idx]
            q_loss = nn.functional.mse_loss(self.critic(s, a), y)
            self.critic_opt.zero_grad(set_to_none=True)
            q_loss.backward()
            self.critic_opt.step()
            p_loss = -self.critic(s, self.actor(s)).mean()
            self.actor_opt.zero_grad(set_to_none=True)
            p_loss.backward()
            self.actor_opt.step()
            loss = float(q_loss.detach())
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue learning (checkpointed per episode)."""
        return {
            "policy": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "buffer": {"states": self.states, "actions": self.actions, "targets": self.targets},
            "counters": [self.rollouts, self.episodes],
            "baseline": self.baseline,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` (or just an actor, ``{"policy": ...}``, for transfer)."""
        self.actor.load_state_dict(state["policy"])
        if "critic" not in state:
            self.rollouts = self.config.warmup  # a transferred actor acts from the start
            return
        self.critic.load_state_dict(state["critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        buf = state["buffer"]
        self.states, self.actions, self.targets = buf["states"], buf["actions"], buf["targets"]
        self.rollouts, self.episodes = (int(x) for x in state["counters"])
        self.baseline = state["baseline"]


def _truncated_normal(
    mu: float, sigma: float, lo: float, hi: float, generator: torch.Generator
) -> float:
    """A draw of N(mu, sigma²) restricted to [lo, hi] (by resampling, then clipping)."""
    for _ in range(32):
        x = mu + sigma * float(torch.randn((), generator=generator))
        if lo <= x <= hi:
            return x
    return min(max(mu, lo), hi)


def macs_target(teacher_macs: float, fraction: float, profile_budget: float | None) -> float:
    """The channel agent's MACs target: ``fraction`` of the teacher's, and within the
    profile's MACs budget when it has one."""
    target = fraction * teacher_macs
    if profile_budget is not None and math.isfinite(profile_budget):
        target = min(target, profile_budget)
    return target
