"""Seeds: the students a practitioner would try first, evaluated before any policy sample.

Every layer is kept and the widths shrink, at a ladder of sizes (``2×, 4×, … fewer
parameters``, each clipped to the size caps of the profile and the run's targets):

- ``uniform``: one width factor for every channel group (a width multiplier);
- ``l1``: global L1-magnitude channel pruning — each channel scored by the L1 norm of the
  filters that write it (summed over a group's tied producers), divided by its group's mean
  score so layers of different scale compare (Torch-Pruning's global magnitude pruning with
  mean normalisation), one threshold for the whole network. The surgery keeps the same
  channels: within a group it ranks by the same L1 scores;
- ``l1/ms`` (latency-matched only): the same scores divided by what a channel of its group
  costs in time on the device (:func:`time_scores`), so one threshold cuts where the time
  is spent — early, high-resolution layers — rather than where the parameters are (HALP's
  importance per unit of latency).
- ``uniform/√ms`` (latency-matched only): a width multiplier per group inversely
  proportional to the square root of what a channel of the group costs in time
  (:func:`time_widths`): between ``uniform`` and ``l1/ms``, which on a network whose
  channels score alike keeps almost nothing of the early layers (one global threshold on
  scores tilted by time keeps every cheap channel first). The students that beat the seeds
  on Fashion-MNIST sat between the two: thinner early layers, wider late ones.

The quantization stage's seeds are uniform bit-widths, one per width the device runs.
Seeds are journaled like any candidate, with ``method: baseline``; they never update a policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from hwcompress.arch.genome import Genome
from hwcompress.arch.spec import ArchSpec
from hwcompress.search.target import (
    LatencyPredictor,
    fits,
    largest_fitting,
    present_groups,
    snap,
)

#: The default ladder: how many times fewer parameters than the teacher.
SEED_RATIOS = (2.0, 4.0, 8.0, 16.0, 24.0, 32.0, 48.0)
#: The smallest share of a group's channels a seed keeps.
MIN_KEEP = 0.05
#: A group's per-channel time cost, relative to the mean group's, is counted as at least
#: this share (a group the predictor calls free is not kept whole for nothing).
MIN_COST_SHARE = 0.1
#: ``uniform/√ms`` widens a group by its channels' time cost to this power (relative to the
#: mean group's).
TIME_EXPONENT = -0.5
#: The seed families that add their latency-matched student alone (no ladder of sizes).
LATENCY_ONLY = ("l1/ms", "uniform/√ms")
#: A latency-matched seed checked by measurement stays within this share of the budget (the
#: trained student is timed again, and timings on a shared machine vary by a few per cent).
MEASURED_MARGIN = 0.95
#: Under a latency budget, the ladder's rungs predicted to run in less than this share of it
#: are left out: far faster than asked, they lose accuracy for nothing and cost the search
#: time its policies need.
NEAR_BUDGET = 0.5
#: The same share in a run with a target (accuracy alone ranks the students that meet it): a
#: rung well under the budget can only lose to the latency-matched students, and each one
#: evaluated is a policy rollout fewer.
NEAR_BUDGET_TARGET = 0.8


def channel_scores(teacher: nn.Module, spec: ArchSpec) -> dict[str, torch.Tensor]:
    """Each shrinkable group's channel scores (L1 of the producers' filters), mean-normalised."""
    from hwcompress.arch.graph import analyze_graph, trace_model
    from hwcompress.arch.surgery import _importance

    a = analyze_graph(trace_model(teacher), spec.input_shape)
    wanted = {g.key for g in spec.shrinkable}
    scores = {}
    for root, key in a.keys.items():
        if root != a.root(root) or key not in wanted or not a.producers(root):
            continue
        s = _importance(a, root)
        scores[key] = s / s.mean().clamp_min(1e-12)
    return scores


def channel_costs(
    spec: ArchSpec, base: Genome, latency: LatencyPredictor, keys: list[str]
) -> dict[str, float] | None:
    """The time one channel of each group of ``keys`` costs in ``base`` (the latency saved by
    halving the group alone, per channel removed, from the predictor), relative to the mean
    group's and at least :data:`MIN_COST_SHARE` of it; None where the predictor calls every
    group free."""
    from hwcompress.search.features import group_sensitivity

    share = group_sensitivity(spec, keys, latency, base)
    channels = {g.key: g.channels for g in spec.shrinkable}
    per_channel = {k: share[k] / max(1.0, base.width.get(k, 1.0) * channels[k] / 2) for k in keys}
    mean = sum(per_channel.values()) / len(keys)
    if mean <= 0:
        return None
    return {k: max(per_channel[k] / mean, MIN_COST_SHARE) for k in keys}


def time_scores(
    scores: dict[str, torch.Tensor],
    spec: ArchSpec,
    base: Genome,
    latency: LatencyPredictor,
) -> dict[str, torch.Tensor]:
    """Channel scores per millisecond: each group's L1 scores divided by the time one of its
    channels costs in ``base`` (:func:`channel_costs`)."""
    keys = [k for k in present_groups(spec, base) if k in scores]
    if not keys:
        return {}
    costs = channel_costs(spec, base, latency, keys)
    if costs is None:
        return {k: scores[k] for k in keys}
    return {k: scores[k] / costs[k] for k in keys}


def time_widths(
    spec: ArchSpec, base: Genome, latency: LatencyPredictor, exponent: float = TIME_EXPONENT
) -> dict[str, float]:
    """Each present group's relative width for ``uniform/√ms``: the time one of its channels
    costs in ``base`` (:func:`channel_costs`) to ``exponent``; the largest is 1."""
    keys = present_groups(spec, base)
    if not keys:
        return {}
    costs = channel_costs(spec, base, latency, keys)
    if costs is None:
        return dict.fromkeys(keys, 1.0)
    rel = {k: c**exponent for k, c in costs.items()}
    top = max(rel.values())
    return {k: r / top for k, r in rel.items()}


def shaped_genome(
    spec: ArchSpec, base: Genome, shape: dict[str, float], multiple: int = 1
) -> Callable[[float], Genome]:
    """``q ↦`` the base with each group in ``shape`` at width ``shape[k]·s``, ``s`` growing
    from 0 at ``q = 0`` to where every group is whole at ``q = 1`` (counts snapped to
    ``multiple``)."""
    channels = {g.key: g.channels for g in spec.shrinkable}
    reach = 1.0 / max(min(shape.values()), 1e-6)

    def make(q: float) -> Genome:
        width = {
            k: snap(min(1.0, max(q * reach * r, MIN_KEEP)), channels[k], multiple)
            for k, r in shape.items()
        }
        return Genome(keep=dict(base.keep), width=width, kernel=dict(base.kernel))

    return make


def uniform_genome(spec: ArchSpec, base: Genome, multiple: int = 1) -> Callable[[float], Genome]:
    """``q ↦`` the base with every present group at width ``q`` (whole channels, or whole
    multiples of ``multiple``)."""
    keys = present_groups(spec, base)
    channels = {g.key: g.channels for g in spec.shrinkable}

    def make(q: float) -> Genome:
        width = {k: snap(max(q, MIN_KEEP), channels[k], multiple) for k in keys}
        return Genome(keep=dict(base.keep), width=width, kernel=dict(base.kernel))

    return make


def l1_genome(
    spec: ArchSpec, base: Genome, scores: dict[str, torch.Tensor], multiple: int = 1
) -> Callable[[float], Genome]:
    """``q ↦`` the base pruned by one global threshold that keeps the top ``q`` of all
    channels by normalised L1 score (each group keeps at least ``MIN_KEEP``; counts snapped
    to ``multiple``)."""
    keys = [k for k in present_groups(spec, base) if k in scores]
    pooled = torch.cat([scores[k] for k in keys]).sort(descending=True).values

    def make(q: float) -> Genome:
        n = max(1, min(len(pooled), round(q * len(pooled))))
        threshold = pooled[n - 1]
        width = {}
        for k in keys:
            total = len(scores[k])
            kept = max(int((scores[k] >= threshold).sum()), math.ceil(MIN_KEEP * total))
            width[k] = snap(kept / total, total, multiple)
        return Genome(keep=dict(base.keep), width=width, kernel=dict(base.kernel))

    return make


def match_measured(
    make: Callable[[float], Genome],
    predicted: Genome,
    allowed: Callable[[Genome], bool],
    measure: Callable[[Genome], float],
    budget_ms: float,
) -> Genome:
    """The widest student of the family ``make`` whose *measured* latency is within
    ``budget_ms``, found from the one the predictor chose: a bisection over the family's
    wider students (narrower ones, when the predicted one measures over), a few timings.

    Args:
        make: The family (``q ↦`` genome, growing with ``q``).
        predicted: The family's widest student within the budget by the predictor.
        allowed: Whether a student meets the run's other caps (sizes; they grow with ``q``).
        measure: ``genome ↦`` measured latency (ms).
        budget_ms: The latency it must stay within.
    """
    family: dict[str, Genome] = {}
    for q in torch.linspace(MIN_KEEP, 1.0, 96).tolist():
        g = make(q)
        family.setdefault(g.key(), g)
    ordered = list(family.values())
    keys = [g.key() for g in ordered]
    if predicted.key() not in keys:
        return predicted
    i = keys.index(predicted.key())
    if measure(predicted) <= budget_ms:
        lo, hi = i, len(ordered)  # ordered[lo] fits; ordered[hi:] are not known to
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if allowed(ordered[mid]) and measure(ordered[mid]) <= budget_ms:
                lo = mid
            else:
                hi = mid
        return ordered[lo]
    lo, hi = -1, i  # ordered[hi] is over; ordered[lo] is not known to be
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if measure(ordered[mid]) <= budget_ms:
            lo = mid
        else:
            hi = mid
    return ordered[lo] if lo >= 0 else predicted


def width_seeds(
    teacher: nn.Module,
    spec: ArchSpec,
    base: Genome,
    caps: dict[str, float],
    ratios: tuple[float, ...] = SEED_RATIOS,
    *,
    l1: bool = True,
    latency: LatencyPredictor | None = None,
    multiple: int = 1,
    measured: LatencyPredictor | None = None,
    near_budget: float = NEAR_BUDGET,
) -> list[tuple[str, Genome]]:
    """The uniform and global-L1 seeds of ``base`` at each ratio of the ladder.

    With a ``latency_ms`` cap and a ``latency`` predictor, every rung is also scaled to the
    predicted latency budget, and each family adds its largest student within that budget
    (``uniform latency 3.1x``): Torch-Pruning's practice of pruning until fast enough;
    ``l1/ms`` and ``uniform/√ms`` add their latency-matched students alone
    (:func:`time_scores`, :func:`time_widths`). Rungs then
    predicted under ``near_budget`` of the budget are left out. With a
    ``measured`` latency too, the latency-matched students are checked by timing them
    (:func:`match_measured`, within :data:`MEASURED_MARGIN` of the budget): a prediction a
    few per cent off, or channel counts in coarse steps, would leave them short of it.

    Args:
        teacher: The teacher (its weights rank the channels).
        spec: The teacher's spec.
        base: The structure seeds start from (the teacher's, ``--student``'s, or one the
            removal stage found).
        caps: Size caps every seed must meet (profile budgets and targets).
        ratios: Parameter reduction factors (none: the latency-matched students alone).
        l1: Whether the global-L1 family is included (else the width multiplier alone).
        latency: Predicts a student's latency (ms) for a ``latency_ms`` cap.
        multiple: Channel counts are snapped to multiples of it.
        measured: Measures an untrained student's latency (ms) on the device.
        near_budget: The share of a latency budget a ladder rung must be predicted to
            spend (:data:`NEAR_BUDGET`, or :data:`NEAR_BUDGET_TARGET` in a target run).

    Returns:
        ``(label, genome)`` pairs, distinct genomes only, largest first per family.
    """
    matched = "latency_ms" in caps and latency is not None
    if not (ratios or matched) or not present_groups(spec, base):
        return []
    teacher_params = spec.predict_params(Genome())
    families = {"uniform": uniform_genome(spec, base, multiple)}
    scores = channel_scores(teacher, spec) if l1 else {}
    if scores:
        families["l1"] = l1_genome(spec, base, scores, multiple)
    if scores and matched:
        assert latency is not None
        per_ms = time_scores(scores, spec, base, latency)
        if per_ms:
            families["l1/ms"] = l1_genome(spec, base, per_ms, multiple)
    if matched:
        assert latency is not None
        if shape := time_widths(spec, base, latency):
            families["uniform/√ms"] = shaped_genome(spec, base, shape, multiple)
    floor = near_budget * caps["latency_ms"] if matched else 0.0
    sizes = {k: v for k, v in caps.items() if k != "latency_ms"}

    def allowed(g: Genome) -> bool:
        return fits(spec, g, sizes)

    ladder = ([1.0] if matched else []) + sorted(ratios)
    out: list[tuple[str, Genome]] = []
    seen: set[str] = set()
    for name, make in families.items():
        for i, ratio in enumerate(ladder):
            if name in LATENCY_ONLY and i > 0:
                break  # the latency-matched student alone: the ladder is in parameters
            limit = teacher_params / ratio

            def ok(g: Genome, limit: float = limit) -> bool:
                return spec.predict_params(g) <= limit and fits(spec, g, caps, latency=latency)

            genome = largest_fitting(make, ok)
            if genome is not None and matched and i == 0 and measured is not None:
                genome = match_measured(
                    make, genome, allowed, measured, MEASURED_MARGIN * caps["latency_ms"]
                )
            if genome is None or genome.key() in seen:
                continue
            if i > 0 and latency is not None and floor and latency(genome) < floor:
                break  # the ladder only goes down from here
            seen.add(genome.key())
            # A rung the caps pushed further down is named by the reduction it reached.
            reached = teacher_params / max(spec.predict_params(genome), 1)
            shown = ratio if reached < 1.1 * ratio else float(f"{reached:.3g}")
            kind = f"{name} latency" if matched and i == 0 else name
            out.append((f"{kind} {shown:g}x", genome))
    return out
