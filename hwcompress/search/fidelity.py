"""Multi-fidelity evaluation: successive halving inside each episode.

Every candidate gets the short proxy distillation (fidelity 1). After an episode, the best
``fraction`` of its rollouts, ranked by their proxy reward, are trained ``epochs`` more from
their own weights (fidelity 2), and their reward is recomputed. The policy learns from the
highest-fidelity reward each rollout reached, and the product is chosen among the run's best
students after its contenders have all reached the highest fidelity
(:func:`hwcompress.search.product.select_product`).

Which candidates are promoted depends only on their proxy rewards, so a resumed run promotes
the same ones, and a candidate already promoted (its record is in the journal) is not again.
Under a time budget a promotion that would end past the stage's deadline (estimated from the
candidate's own proxy time, scaled by the epochs) is left to the product phase, which trains
the run's contenders to the top fidelity anyway: promotions must not eat the time the policy
samples need (eight epochs of one promotion cost four proxy students of two).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from hwcompress.search.candidate import Candidate, Status
from hwcompress.search.evaluate import CandidateEvaluator

#: The fidelity a run's best students reach when promotion is on.
TOP_FIDELITY = 2


def promote(
    evaluator: CandidateEvaluator,
    cands: list[Candidate],
    *,
    fraction: float,
    epochs: int,
    episodes: int,
    record: Callable[[Candidate], None],
    deadline: float | None = None,
    proxy_epochs: int = 1,
) -> list[Candidate]:
    """Refines the best ``fraction`` of ``cands`` (at least one) to the next fidelity.

    Args:
        evaluator: The run's evaluator (it caches the refined candidates).
        cands: One episode's rollouts, in rollout order (repeats allowed).
        fraction: Share of the rollouts promoted.
        epochs: Extra distillation epochs of a promotion; 0 turns promotion off.
        episodes: Episodes of the stage (the soft penalty's schedule).
        record: Called with each newly refined candidate (to journal it).
        deadline: The stage's deadline (``time.perf_counter()``; None: no budget): a
            promotion estimated to end after it is skipped.
        proxy_epochs: The epochs of the proxy training (scales a promotion's estimate).

    Returns:
        ``cands`` with each promoted candidate replaced by its refined record.
    """
    if epochs <= 0 or fraction <= 0:
        return cands
    unique = {c.id: c for c in cands if c.status == Status.OK and c.reward_at(1) > -1.0}
    ranked = sorted(unique.values(), key=lambda c: (-c.reward_at(1), c.id))
    chosen = ranked[: max(1, math.ceil(fraction * len(cands)))]
    refined = {}
    for cand in chosen:
        if cand.fidelity >= TOP_FIDELITY:
            refined[cand.id] = cand
            continue
        if deadline is not None:
            estimate = cand.seconds * epochs / max(proxy_epochs, 1)
            if time.perf_counter() + estimate > deadline:
                continue
        new = evaluator.refine(cand, epochs, episodes=episodes)
        if new is not cand:
            record(new)
        refined[cand.id] = new
    return [refined.get(c.id, c) for c in cands]
