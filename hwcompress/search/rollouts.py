"""One episode's rollouts: the proposals a stage's controller draws, fitted to the budgets,
until enough of them are students the run has not evaluated yet; where latency steers a
target run, a policy's larger pool screened by a surrogate of the proxy reward
(:mod:`hwcompress.search.screen`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch

from hwcompress.arch import Genome
from hwcompress.search.policies import Sample
from hwcompress.search.screen import screen
from hwcompress.search.target import fits

if TYPE_CHECKING:
    from hwcompress.search.methods import StageController
    from hwcompress.search.run_api import StageRun

#: An episode draws at most this many proposals per rollout while looking for students the
#: run has not evaluated yet (a policy started around the best student repeats it often).
DRAWS_PER_ROLLOUT = 8

#: A structure a stage decides for: its genome, its decision items and their features.
Prepared = tuple[Genome, list[str], torch.Tensor]


class Proposer(Protocol):
    """What :func:`draw` asks of a stage: its name, the genome a controller's actions
    describe, and that genome fitted to the run's budgets."""

    name: str

    def genome(
        self, run: StageRun, base: Genome, items: list[str], actions: list[Any]
    ) -> Genome: ...

    def fit(self, run: StageRun, genome: Genome) -> Genome: ...


def draw(
    run: StageRun,
    stage: Proposer,
    controller: StageController,
    prepared: list[Prepared],
    gen: torch.Generator,
    episode: int,
    rollouts: int | None = None,
) -> tuple[list[Sample], list[Genome], int]:
    """One episode's rollouts: proposals (``stage``'s genome of a sample's actions, fitted
    to the budgets; draw ``r`` from ``prepared[r % len(prepared)]``) drawn until
    ``rollouts`` (default: the run's per episode) of them are students the run has not
    evaluated before this episode (at most :data:`DRAWS_PER_ROLLOUT` draws a rollout). A
    proposal that repeats an earlier student costs no training, so it takes no rollout of
    the budget; nor does it teach the policy (its reward, maybe at a higher fidelity than
    the new students', would pull a policy started around the best student back onto it),
    unless the episode drew nothing new.

    A controller that ``screens`` (the N2N policies), where the run fills proposals to a
    latency budget, draws ``screen_pool`` times as many new proposals and the ``rollouts``
    of them a surrogate of the proxy reward expects most of, within the budget when
    measured, are kept (:func:`screen`).

    Which students count as earlier does not depend on this episode's own (a resumed run
    draws the same proposals again).

    Returns:
        The samples and genomes to evaluate, and how many of them were over the budgets as
        proposed (before the clamp scaled them down).
    """
    rollouts = run.config.rollouts if rollouts is None else rollouts
    earlier = {
        key: c
        for key, c in run.evaluator.cache.items()
        if not (c.stage == stage.name and c.episode == episode)
    }
    seen = set(earlier)
    screens = getattr(controller, "screens", False) and run.fill
    pool = rollouts * (run.config.screen_pool if screens else 1)
    fresh: list[tuple[Sample, Genome, bool]] = []
    repeats: list[tuple[Sample, Genome, bool]] = []
    for r in range(DRAWS_PER_ROLLOUT * pool):
        if len(fresh) == pool:
            break
        base, items, features = prepared[r % len(prepared)]
        sample = controller.sample(features, gen)
        proposed = stage.genome(run, base, items, sample.actions)
        genome = stage.fit(run, proposed)
        key = genome.key()
        over = key != proposed.key() and not fits(
            run.ctx.spec, proposed, run.caps, latency=run.latency
        )
        (repeats if key in seen else fresh).append((sample, genome, over))
        seen.add(key)
    if len(fresh) > rollouts:
        chosen = screen(
            run.ctx.spec,
            list(earlier.values()),
            [g for _, g, _ in fresh],
            rollouts,
            latency=run.latency,
            budget_ms=run.caps.get("latency_ms"),
        )
        fresh = [fresh[i] for i in chosen]
    kept = fresh or repeats[:rollouts]
    return [s for s, _, _ in kept], [g for _, g, _ in kept], sum(o for _, _, o in kept)
