"""Seeds: the students a practitioner would try first, evaluated before any policy sample.

Every layer is kept and the widths shrink, at a ladder of sizes (``2×, 4×, … fewer
parameters``, each clipped to the size caps of the profile and the run's targets):

- ``uniform``: one width factor for every channel group (a width multiplier);
- ``l1``: global L1-magnitude channel pruning — each channel scored by the L1 norm of the
  filters that write it (summed over a group's tied producers), divided by its group's mean
  score so layers of different scale compare (Torch-Pruning's global magnitude pruning with
  mean normalisation), one threshold for the whole network. The surgery keeps the same
  channels: within a group it ranks by the same L1 scores.

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
#: A latency-matched seed checked by measurement stays within this share of the budget (the
#: trained student is timed again, and timings on a shared machine vary by a few per cent).
MEASURED_MARGIN = 0.95
#: Under a latency budget, the ladder's rungs predicted to run in less than this share of it
#: are left out: far faster than asked, they lose accuracy for nothing and cost the search
#: time its policies need.
NEAR_BUDGET = 0.5


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
) -> list[tuple[str, Genome]]:
    """The uniform and global-L1 seeds of ``base`` at each ratio of the ladder.

    With a ``latency_ms`` cap and a ``latency`` predictor, every rung is also scaled to the
    predicted latency budget, and each family adds its largest student within that budget
    (``uniform latency 3.1x``): Torch-Pruning's practice of pruning until fast enough.
    Rungs then predicted under :data:`NEAR_BUDGET` of the budget are left out. With a
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
    floor = NEAR_BUDGET * caps["latency_ms"] if matched else 0.0
    sizes = {k: v for k, v in caps.items() if k != "latency_ms"}

    def allowed(g: Genome) -> bool:
        return fits(spec, g, sizes)

    ladder = ([1.0] if matched else []) + sorted(ratios)
    out: list[tuple[str, Genome]] = []
    seen: set[str] = set()
    for name, make in families.items():
        for i, ratio in enumerate(ladder):
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
