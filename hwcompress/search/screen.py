"""Screening proposals before they are trained: a surrogate of the proxy reward, fitted on
the run's students so far, picks which of a larger pool of a policy's proposals are worth
a rollout.

Where latency steers a target run every proposal is scaled to the budget, so what differs
between them is how the widths are shared out, and a student's proxy reward is close to a
smooth function of its widths: on Fashion-MNIST (eight runs at a 3× latency target) this
fit on the students before the shrinkage stage ranked that stage's samples by expected
improvement with a Spearman correlation of 0.53-0.86 to their proxy rewards. The policy draws
``screen_pool`` proposals per rollout; the ones with the largest expected improvement over
the best proxy reward so far (a Bayesian ridge fit, so a proposal far from every student
counts by its uncertainty as well as its mean) are trained, and REINFORCE learns from
them. Random search draws without a screen: it is the control.

The fit reads the students evaluated before the episode (a resumed run screens alike).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from hwcompress.arch import Genome
from hwcompress.search.candidate import Candidate, Status

if TYPE_CHECKING:
    from hwcompress.arch.spec import ArchSpec

#: The fit needs at least this many students (with fewer, the pool's first proposals are
#: trained, in draw order).
MIN_FITTED = 8


def genome_vector(spec: ArchSpec, genome: Genome) -> list[float]:
    """A student's surrogate features: the log width of each of the teacher's channel
    groups, then 1 for each removable unit it removes."""
    return [math.log(max(genome.width.get(g.key, 1.0), 1e-2)) for g in spec.shrinkable] + [
        0.0 if genome.keep.get(u.name, True) else 1.0 for u in spec.removable
    ]


def proxy_reward(cand: Candidate) -> float | None:
    """The reward ``cand`` reached at the proxy fidelity (None if it failed or broke a
    constraint)."""
    if cand.status != Status.OK or not cand.feasible:
        return None
    for step in cand.history:
        if int(step.get("fidelity", 0)) == 1:
            return float(step["reward"])
    return cand.reward if cand.fidelity == 1 else None


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """``E[max(0, f − best)]`` for ``f ~ N(mean, std²)``."""
    from scipy.stats import norm

    std = np.maximum(std, 1e-9)
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def screen(spec: ArchSpec, known: list[Candidate], pool: list[Genome], keep: int) -> list[int]:
    """Which of ``pool`` to train: the indices of the ``keep`` proposals with the largest
    expected improvement of the proxy reward over the best of ``known`` (ties go to the
    larger predicted reward, then to draw order); the first ``keep`` when fewer than
    :data:`MIN_FITTED` of ``known`` have a proxy reward or the pool is no larger than
    ``keep``.

    Args:
        spec: The teacher's spec (the features' groups and units).
        known: The run's students so far.
        pool: The proposals, in draw order.
        keep: How many to train.
    """
    if len(pool) <= keep:
        return list(range(len(pool)))
    points = [
        (genome_vector(spec, Genome.from_dict(c.genome)), r)
        for c in known
        if (r := proxy_reward(c)) is not None
    ]
    if len(points) < MIN_FITTED:
        return list(range(keep))
    from sklearn.linear_model import BayesianRidge

    x = np.array([p for p, _ in points])
    y = np.array([r for _, r in points])
    model = BayesianRidge().fit(x, y)
    mean, std = model.predict(np.array([genome_vector(spec, g) for g in pool]), return_std=True)
    gain = expected_improvement(mean, std, float(y.max()))
    # where nothing is expected to beat the best, the gains all round to 0: the mean decides
    order = sorted(range(len(pool)), key=lambda i: (-gain[i], -mean[i], i))
    return sorted(order[:keep])
