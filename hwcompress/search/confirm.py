"""The latency of the product's rivals confirmed before the product is chosen.

A candidate is timed once, in turn with the teacher, when it is evaluated. On a shared
machine the ratio of a small student's latency to the teacher's moves by several per cent
between sittings (fixed per-operator costs weigh more in a small student, and they vary with
what else the machine runs), so a student just under a latency budget in one sitting can be
over it in the next. Before the product is chosen, the leading feasible students are timed
again, together and in turn with the teacher, and each is counted at the **slower** of its
two measurements plus the disagreement between them (:func:`confirmed_latency`): a student
whose sittings differ by *d* may well be *d* slower again in the next one, so the product is a
student that meets the budget with that much to spare, as a user who times it once more on
the device would find. (Measured on Fashion-MNIST students at a third of the teacher's
latency: sittings 0.331, 0.312, then 0.338, 0.351 and 0.307 of the teacher — the slower of
two alone, 0.331, passed a 0.333 budget the student then missed;
``benchmarks/results/vs_pruning_latency_fashion_mnist_avx512_c215f8a.md``.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from hwcompress.search.candidate import Candidate

if TYPE_CHECKING:
    from hwcompress.search.evaluate import CandidateEvaluator
    from hwcompress.search.product import Confirmation
    from hwcompress.search.run_api import StageRun

#: Rounds of the confirmation (each times every leader and the teacher in turn).
CONFIRM_ROUNDS = 30
#: The confirmation goes on at least this long (seconds), across the machine's states.
CONFIRM_MIN_TIME_S = 6.0


def confirmed_latency(first_ms: float, again_ms: float) -> float:
    """The latency a student is counted at after two sittings: the slower one plus the
    disagreement between them (``max + |first - again|``)."""
    return max(first_ms, again_ms) + abs(first_ms - again_ms)


def latency_confirmation(run: StageRun) -> Confirmation | None:
    """The confirmation of ``run``'s leaders (its ``contenders`` best eligible students)
    where latency steers it; None where latency only filters or is not measured here."""
    if run.latency is None or run.ctx.latency_reference is None:
        return None

    def confirm(ranked: Callable[[], list[Candidate]]) -> list[Candidate]:
        return confirm_latency(
            run.evaluator,
            run.score.eligible,
            ranked,
            leaders=run.config.contenders,
            record=run.record,
            progress=run.reporter.message,
        )

    return confirm


def confirm_latency(
    evaluator: CandidateEvaluator,
    eligible: Callable[[Candidate], bool],
    ranked: Callable[[], list[Candidate]],
    *,
    leaders: int,
    record: Callable[[Candidate], None],
    progress: Callable[[str], None] | None = None,
    rounds: int = CONFIRM_ROUNDS,
) -> list[Candidate]:
    """Times the ``leaders`` best eligible students again, in turn with the teacher, and
    counts each at :func:`confirmed_latency` of its two measurements (its feasibility and
    reward follow). Leaders confirmed before (``latency_confirmed_ratio`` set) are skipped,
    and a structure whose second timing the run keeps (``latencies.json``: a resumed run, or
    the other run of a benchmark's pair) is counted at it without a new sitting;
    any leader that loses its feasibility makes room for the next one, so the run ends with
    ``leaders`` students confirmed, or every eligible one.

    Args:
        evaluator: The run's evaluator (its context names the teacher's file and latency).
        eligible: Whether a student may be the product.
        ranked: The run's evaluated candidates, best first (read again after each
            confirmation: a re-timed leader may fall behind).
        leaders: How many eligible students to confirm.
        record: Called with each re-timed candidate (to journal it).
        progress: Receives a line before each timing.
        rounds: Rounds of the confirmation.

    Returns:
        The candidates re-timed, with their new metrics.
    """
    from hwcompress.measure.latency import measure_local_many

    ctx = evaluator.ctx
    reference = ctx.latency_reference
    if reference is None or leaders <= 0:
        return []
    teacher_ms = float(ctx.teacher_metrics["latency_ms"])
    done: list[Candidate] = []
    confirmed = {c.id for c in ranked() if "latency_confirmed_ratio" in c.metrics}
    while True:
        pool = [c for c in ranked() if eligible(c)]
        todo = [c for c in pool[:leaders] if c.id not in confirmed]
        if not todo:
            return done
        memo = ctx.latencies
        ratios = {c.id: memo.again(_key(c)) if memo is not None else None for c in todo}
        fresh = [c for c in todo if ratios[c.id] is None]
        if progress is not None and fresh:
            progress(f"timing {len(fresh)} leading student(s) again in turn with the teacher")
        if fresh:
            paths = [reference, *(ctx.run_dir / c.artifacts["onnx"] for c in fresh)]
            times = measure_local_many(
                paths, ctx.profile, rounds=rounds, min_time_s=CONFIRM_MIN_TIME_S
            )
            teacher_now = max(times[0].median_ms, 1e-9)
            for cand, lat in zip(fresh, times[1:], strict=True):
                ratios[cand.id] = again = lat.median_ms / teacher_now
                if memo is not None:
                    memo.put_again(_key(cand), again)
        for cand in todo:
            ratio = ratios[cand.id]
            assert ratio is not None
            before = float(cand.metrics.get("latency_ms", 0.0))
            new = replace(
                cand,
                metrics={
                    **cand.metrics,
                    "latency_ms": confirmed_latency(before, ratio * teacher_ms),
                    "latency_first_ms": float(cand.metrics.get("latency_first_ms", before)),
                    "latency_confirmed_ratio": ratio,
                },
                history=list(cand.history),
            )
            evaluator.score(new)
            evaluator.cache[_key(new)] = new
            record(new)
            done.append(new)
            confirmed.add(new.id)


def _key(cand: Candidate) -> str:
    from hwcompress.arch import Genome

    return Genome.from_dict(cand.genome).key()
