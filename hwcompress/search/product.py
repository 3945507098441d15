"""Choosing the run's product: the best feasible student of the whole run.

Stages score size differently (drl-prune's count MACs, quantization weight bytes), so the
product is ranked by one run-wide score: with a target, validation accuracy among the
students that meet every constraint (AMC's resource-constrained mode); otherwise N2N's
``Rc · Ra`` with one size for every candidate — the run's ``size_metric`` (MACs for
drl-prune), or the deployed weight bytes when the run quantizes, so that a quantized student
and a float one compare by what they occupy on the device. Before the choice, the leading
contenders are all trained to the top fidelity, so the product is never picked on a short
proxy against a better-trained rival, and so are the challengers that could still overtake
them (under ``Rc · Ra``, smaller students the proxy left short of the teacher's accuracy).

Under ``Rc · Ra`` a validation accuracy is a count on a finite split: on digits' 143
validation images one image is 0.7 points of ``Ra``, worth more than going from 16× to 32×
fewer parameters, so the product was whichever student the split's luck favoured. The
ranking therefore counts the top-fidelity students whose accuracy is within one standard
error of the best one's as tied with it (the one-standard-error rule of Breiman et al.,
1984; Hastie et al., *Elements of Statistical Learning* §7.10), and among those the smaller
wins (:meth:`ProductScore.tie`). With a target, accuracy alone ranks and no tie is made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from hwcompress.search.candidate import Candidate, Status
from hwcompress.search.evaluate import CandidateEvaluator
from hwcompress.search.fidelity import TOP_FIDELITY
from hwcompress.search.reward import compression_reward

#: Where latency steers, called with the ranking (read anew each time) before the choice:
#: times the leaders again and returns those it re-timed (:mod:`hwcompress.search.confirm`).
Confirmation = Callable[[Callable[[], list[Candidate]]], list[Candidate]]
#: ``(floor, best)`` validation accuracies: see :meth:`ProductScore.tie`.
Tie = tuple[float, float]


class ProductScore:
    """The run-wide score of a candidate.

    Args:
        teacher_metrics: The teacher's metrics.
        teacher_accuracy: The teacher's validation accuracy.
        size_metric: The size every candidate is compared by.
        objective: ``n2n`` or ``accuracy`` (a run with a target).
        float_ships: Whether the device runs float models; where it does not, only quantized
            students can be the product.
        val_samples: The size of the validation split (for :meth:`tie`; 0: no ties).
    """

    def __init__(
        self,
        teacher_metrics: dict[str, float],
        teacher_accuracy: float,
        size_metric: str,
        objective: str,
        *,
        float_ships: bool = True,
        val_samples: int = 0,
    ) -> None:
        self.teacher = teacher_metrics
        self.accuracy = teacher_accuracy
        self.size_metric = size_metric
        self.objective = objective
        self.float_ships = float_ships
        self.val_samples = val_samples

    def __call__(self, cand: Candidate, tie: Tie | None = None) -> float:
        accuracy = cand.metrics.get("val_accuracy", 0.0)
        if tie is not None and cand.fidelity >= TOP_FIDELITY and accuracy >= tie[0]:
            accuracy = max(accuracy, tie[1])
        return self._score(cand.metrics, accuracy)

    def tie(self, cands: Iterable[Candidate]) -> Tie | None:
        """``(floor, best)``: under ``Rc · Ra``, a top-fidelity student whose validation
        accuracy is at least ``floor`` is scored as if it had ``best``, the best such
        accuracy among the eligible ones; ``floor`` is one standard error under it
        (Agresti–Coull, so that a split at 100 % still has one). None with a target, without
        a validation size or before any eligible student reached the top fidelity."""
        if self.objective == "accuracy" or self.val_samples <= 0:
            return None
        accs = [
            c.metrics.get("val_accuracy", 0.0)
            for c in cands
            if c.fidelity >= TOP_FIDELITY and self.eligible(c)
        ]
        if not accs:
            return None
        best, n = max(accs), self.val_samples
        p = (best * n + 2) / (n + 4)
        return best - math.sqrt(p * (1 - p) / (n + 4)), best

    def ceiling(self, cand: Candidate) -> float:
        """The score ``cand`` would reach if training longer brought its validation accuracy
        up to the teacher's (its size and latency do not change with training)."""
        return self._score(cand.metrics, max(cand.metrics.get("val_accuracy", 0.0), self.accuracy))

    def _score(self, metrics: dict[str, float], accuracy: float) -> float:
        ra = accuracy / max(self.accuracy, 1e-12)
        if self.objective == "accuracy":
            return ra
        size = metrics.get(self.size_metric, self.teacher[self.size_metric])
        return compression_reward(size, self.teacher[self.size_metric]) * ra

    def key(self, cand: Candidate, tie: Tie | None = None) -> tuple[bool, float, float]:
        """Sort key, best last: feasible first, then the score (with ``tie``), then fewer
        parameters.

        A student with more parameters than its teacher is never ranked feasible: it is not
        a compression, whatever its constraints say; nor is a float student on a device that
        runs only integer models.
        """
        return (self.eligible(cand), self(cand, tie), -cand.metrics.get("params", 0.0))

    def eligible(self, cand: Candidate) -> bool:
        """Whether ``cand`` may be the product: feasible, no larger than its teacher, and
        quantized where the device runs only integer models (see :meth:`key`)."""
        smaller = cand.metrics.get("params", 0.0) <= self.teacher.get("params", float("inf"))
        ships = self.float_ships or bool(cand.genome.get("weight_bits"))
        return cand.feasible and smaller and ships

    def describe(self) -> str:
        """How candidates are ranked, in words."""
        if self.objective == "accuracy":
            return "highest validation accuracy among students meeting every constraint"
        ties = (
            ", validation accuracies within one standard error of the best counted as tied"
            if self.val_samples > 0
            else ""
        )
        return f"highest Rc·Ra with size counted in {self.size_metric}{ties}"


def product_size_metric(method: str, size_metric: str, quantizes: bool) -> str:
    """The size the product ranking counts (see the module docstring)."""
    if quantizes:
        return "weight_bytes"
    return "macs" if method == "drl-prune" else size_metric


def rank(cands: list[Candidate], score: ProductScore) -> list[Candidate]:
    """Evaluated candidates, best first."""
    ok = [c for c in cands if c.status == Status.OK]
    tie = score.tie(ok)
    return sorted(ok, key=lambda c: (*score.key(c, tie), c.id), reverse=True)


def select_product(
    evaluator: CandidateEvaluator,
    score: ProductScore,
    *,
    contenders: int,
    epochs: int,
    record: Callable[[Candidate], None],
    planned: dict[str, list[str]] | None = None,
    plan: Callable[[str, list[str]], None] | None = None,
    out_of_time: Callable[[], bool] | None = None,
    confirm: Confirmation | None = None,
) -> tuple[Candidate | None, dict[str, Any]]:
    """The run's product after training its leading rivals to the top fidelity.

    The ``contenders`` leaders are brought to the top fidelity, then up to ``contenders``
    challengers: the best-scoring students still short of it that could overtake the leader
    if longer training brought them to the teacher's accuracy (smaller ones, under N2N's
    reward), so a smaller student is not lost to a short proxy either.

    Args:
        evaluator: The run's evaluator (its cache holds every candidate).
        score: The run-wide score.
        contenders: How many leaders, and how many challengers, are brought to the top
            fidelity before choosing.
        epochs: Extra epochs of a promotion (0: no promotion).
        record: Called with each newly refined candidate (to journal it).
        planned: The leaders and challengers (candidate ids by phase) an interrupted run
            chose before it was stopped: they are refined, not chosen again (a refined
            leader's new accuracy would otherwise change which students are chosen).
        plan: Called with each phase's choice before its refinements (to journal it).
        out_of_time: True once the run's budget is spent: from then on only the first
            planned refinement still runs (the product is chosen at the top fidelity where
            one student reached it) and the others are skipped, so ``--budget-minutes``
            bounds the product phase too.
        confirm: Where latency steers, called with the ranking (read anew each time) after
            the refinements: it times the leaders again and returns those it re-timed (see
            :func:`hwcompress.search.confirm.confirm_latency`).

    Returns:
        The product (None when nothing was evaluated) and why it was chosen.
    """

    def pool() -> list[Candidate]:
        return rank(list(evaluator.cache.values()), score)

    skipped: list[str] = []
    refined: list[str] = []

    def refine(phase: str, choose: Callable[[list[Candidate]], list[Candidate]]) -> None:
        ids = (planned or {}).get(phase)
        if ids is None:
            ids = [c.id for c in choose([c for c in pool() if score.eligible(c)])]
            if plan is not None:
                plan(phase, ids)
        current = {c.id: c for c in evaluator.cache.values()}
        for cand in (current[i] for i in ids if i in current):
            if cand.fidelity < TOP_FIDELITY:
                if refined and out_of_time is not None and out_of_time():
                    if cand.id not in skipped:  # a leader may be a challenger too
                        skipped.append(cand.id)
                    continue
                refined.append(cand.id)
                new = evaluator.refine(cand, epochs)
                if new is not cand:
                    record(new)

    def challengers(eligible: list[Candidate]) -> list[Candidate]:
        if not eligible:
            return []
        lead = score(eligible[0], score.tie(eligible))
        return [c for c in eligible if c.fidelity < TOP_FIDELITY and score.ceiling(c) > lead][
            :contenders
        ]

    if epochs > 0:
        refine("leaders", lambda eligible: eligible[:contenders])
        refine("challengers", challengers)
    confirmed = confirm(pool) if confirm is not None else []
    ranked = pool()
    if not ranked:
        return None, {"reason": "no candidate could be evaluated"}
    best = ranked[0]
    feasible = [c for c in ranked if score.eligible(c)]
    why: dict[str, Any] = {
        "stage": best.stage,
        "method": best.method,
        "label": best.label,
        "fidelity": best.fidelity,
        "score": score(best, score.tie(ranked)),
        "rule": score.describe(),
        "feasible_candidates": len(feasible),
        "reason": (
            f"{score.describe()} over all {len(feasible)} feasible students of the run"
            if score.eligible(best)
            else "no student met every constraint; the best-scoring one is shown"
        ),
    }
    if confirmed:
        why["latency_confirmed"] = {
            c.id: {
                "first_ms": c.metrics.get("latency_first_ms"),
                "ratio_again": c.metrics.get("latency_confirmed_ratio"),
                "feasible": c.feasible,
            }
            for c in confirmed
        }
        lost = sum(not c.feasible for c in confirmed)
        why["reason"] += (
            f"; the {len(confirmed)} leading students were timed again with the teacher and "
            f"keep the slower measurement ({lost} no longer met the budget)"
        )
    if skipped:
        why["skipped_refinements"] = skipped
        why["reason"] += (
            f"; {len(skipped)} planned refinement(s) skipped: the time budget was spent"
        )
    return best, why
