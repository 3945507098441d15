"""N2N's second stage: a width per channel group still present, decided by an
autoregressive LSTM from each of the run's best structures so far.

Where latency steers a target run (:attr:`~hwcompress.search.run_api.StageRun.fill`: a
proposal's scale is the budget's, its shape is the decision), each structure is decided
*relative to its best student so far* (a latency-matched seed, usually), as N2N's
shrinkage scales the layer sizes it is given: an action is a factor of
:data:`RELATIVE_CHOICES` on that student's width of the group, so the policy's most likely
proposal is that student and a sample moves a few groups from it. Elsewhere an action is
an absolute width of :data:`~hwcompress.search.policies.WIDTH_CHOICES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.search.candidate import Candidate
from hwcompress.search.evaluate import structure_of
from hwcompress.search.features import group_features, group_sensitivity
from hwcompress.search.names import StageName
from hwcompress.search.policies import WIDTH_CHOICES, grid_widths
from hwcompress.search.rollouts import Prepared
from hwcompress.search.seeds import width_seeds
from hwcompress.search.stages import PolicyStage, near_budget
from hwcompress.search.steer import untrained_latency

if TYPE_CHECKING:
    from hwcompress.search.run_api import StageRun

#: The shrinkage policy's rollouts go to the carried structures whose best student so far
#: scores within this share of the best one's (the others only take rollouts from them).
BASE_MARGIN = 0.03

#: Where a structure is decided relative to its best student: the factors on that
#: student's width of a group (a geometric ladder, a quarter apart, as many as
#: :data:`~hwcompress.search.policies.WIDTH_CHOICES` so a policy transfers between both).
RELATIVE_CHOICES = (0.33, 0.41, 0.51, 0.64, 0.8, 1.0, 1.25, 1.56, 1.95, 2.44)

#: The action that keeps a group's width as the best student has it.
UNCHANGED = RELATIVE_CHOICES.index(1.0)


class ShrinkageStage(PolicyStage):
    """N2N's second stage: a width factor per channel group still present (autoregressive
    LSTM), from each of the run's best structures so far (a removal decision is judged after
    shrinking, not at full width); where latency steers a target run, relative to each
    structure's best student so far (see the module's docstring)."""

    name = StageName.SHRINKAGE
    #: Whether a structure is decided relative to its best student where the run fills
    #: proposals to the budget.
    relative = True

    def bases(self, run: StageRun) -> list[Genome]:
        # judged before this stage's own students, as when it started (a resumed run too)
        return run.best_structures(run.config.carry, before=self.name)

    def items(self, run: StageRun, base: Genome) -> tuple[list[str], torch.Tensor]:
        ctx = run.ctx
        spec, present = ctx.spec, ctx.spec
        if any(not v for v in base.keep.values()):
            student = build_student(ctx.teacher, structure_of(base), spec.input_shape, spec=spec)
            present = build_spec(student, spec.input_shape)
        keys = {g.key for g in present.shrinkable}
        groups = tuple(g for g in spec.shrinkable if g.key in keys)
        time_share = group_sensitivity(spec, [g.key for g in groups], run.latency, base)
        return [g.key for g in groups], group_features(spec, groups, time_share)

    def genome(self, run: StageRun, base: Genome, items: list[str], actions: list[Any]) -> Genome:
        """The widths the actions name: factors on ``base``'s widths where it has them (a
        structure's best student, :meth:`around_best`), else widths of the teacher's."""
        if base.width:
            width = {
                k: min(1.0, base.width.get(k, 1.0) * RELATIVE_CHOICES[a])
                for k, a in zip(items, actions, strict=True)
            }
        else:
            width = {k: WIDTH_CHOICES[a] for k, a in zip(items, actions, strict=True)}
        return Genome(keep=dict(base.keep), width=width, kernel=dict(base.kernel))

    def rollouts(self, run: StageRun, episode: int) -> int:
        """The run's rollouts per episode, and those the removal stage's episodes left
        unspent spread over this stage's episodes (a removal policy started around the best
        student draws students the run has already evaluated, which take no rollout): every
        method then spends the same candidate budget (a removal episode its time budget cut
        off leaves nothing, its time is spent). Read from the journal, so a resumed run
        draws as many."""
        config = run.config
        ran = sum(1 for r in run.journal.episodes() if r.get("stage") == StageName.REMOVAL)
        if not ran:
            return config.rollouts
        drawn = {c.id for c in run.floats() if c.stage == StageName.REMOVAL and c.episode >= 0}
        spare = max(0, ran * config.rollouts - len(drawn))
        share, rest = divmod(spare, config.episodes)
        return config.rollouts + share + int(episode < rest)

    def seeds(self, run: StageRun, base: Genome, items: list[str]) -> list[tuple[str, Genome]]:
        """The start structure's ladder, and each carried structure with removals narrowed
        by one width multiplier to the ladder's sizes beyond its own, so a removal is not
        judged at full width only. With a target on a size there is nothing to add: the
        removal stage already scaled each proposal down to it (:meth:`fit`), and accuracy
        alone ranks the students that meet it. With a latency target, each carried
        structure with removals is pruned until fast enough (its latency-matched uniform
        and global-L1 students): where the target is beyond every full-depth student (the
        start's ladder is then empty), these are the seeds the policy has to beat."""
        seeds = super().seeds(run, base, items)
        latency_target = "latency_ms" in run.caps and run.latency is not None
        targeted = bool(run.caps) and run.ctx.reward_config.objective == "accuracy"
        if targeted and not latency_target:
            return seeds
        spec, start = run.ctx.spec, run.start
        teacher_params = spec.predict_params(Genome())
        measured = untrained_latency(run.ctx) if run.latency is not None else None
        for structure in self.bases(run):
            removed = sum(
                1 for u, kept in structure.keep.items() if not kept and start.keep.get(u, True)
            )
            if not removed:
                continue
            own = teacher_params / max(spec.predict_params(structure), 1)
            ratios: tuple[float, ...] = ()  # a target run: the latency-matched students
            if not targeted:
                ratios = tuple(r for r in run.config.seed_ratios if r > 1.1 * own)
            seeds += [
                (f"{removed} removed, {label}", genome)
                for label, genome in width_seeds(
                    run.ctx.teacher,
                    spec,
                    structure,
                    run.caps,
                    ratios,
                    l1=targeted,
                    latency=run.latency,
                    multiple=run.multiple,
                    measured=measured,
                    near_budget=near_budget(run),
                )
            ]
        return seeds

    def worth_sampling(self, run: StageRun, prepared: list[Prepared]) -> list[Prepared]:
        """The carried structures whose best eligible student so far (this stage's seeds
        counted, its own samples not, so a resumed run decides alike) scores within
        :data:`BASE_MARGIN` of the best one's, best first: a structure that is clearly
        behind after its own seeds would take a share of every episode's rollouts for
        students that cannot win. All of them when none has an eligible student yet."""
        if len(prepared) < 2:
            return [self.around_best(run, p) for p in prepared]
        best: dict[str, float] = {}
        for c in run.floats():
            if not run.score.eligible(c) or self.own_sample(c):
                continue
            key = Genome.from_dict(c.genome).structure().key()
            best[key] = max(best.get(key, float("-inf")), run.score(c))
        scored = [(best.get(p[0].structure().key()), p) for p in prepared]
        known = [s for s, _ in scored if s is not None]
        if not known:
            return [self.around_best(run, p) for p in prepared]
        top = max(known)
        kept = [(s, p) for s, p in scored if s is not None and s >= top * (1 - BASE_MARGIN)]
        kept.sort(key=lambda sp: -sp[0])
        if len(kept) < len(prepared):
            run.reporter.message(
                f"{self.name}: {len(prepared) - len(kept)} of the {len(prepared)} carried "
                f"structures left out (their best student is over {BASE_MARGIN:.0%} behind)"
            )
        return [self.around_best(run, p) for _, p in kept]

    def best_student(self, run: StageRun, base: Genome) -> Candidate | None:
        """The run's best feasible student of ``base``'s structure so far, this stage's
        seeds counted and its own samples not (a resumed run decides as when it started)."""
        structure = base.structure().key()
        return run.best_of(
            [
                c
                for c in run.floats()
                if c.feasible
                and not self.own_sample(c)
                and Genome.from_dict(c.genome).structure().key() == structure
            ]
        )

    def around_best(self, run: StageRun, prepared: Prepared) -> Prepared:
        """Where the run fills proposals to the budget, ``prepared``'s structure with the
        widths of its best student so far, the widths its actions are factors on (and the
        features' time shares taken at them); else, or with no such student, unchanged."""
        base = prepared[0]
        best = self.best_student(run, base) if self.relative and run.fill else None
        if best is None:
            return prepared
        width = Genome.from_dict(best.genome).width
        ref = Genome(
            keep=dict(base.keep),
            width={k: width.get(k, 1.0) for k in prepared[1]},
            kernel=dict(base.kernel),
        )
        items, features = self.items(run, ref)
        return ref, items, features

    def demonstration(self, run: StageRun, base: Genome, items: list[str]) -> list[int] | None:
        """The best student of ``base``'s structure so far: each width kept where ``base``
        carries that student's widths (:meth:`around_best`), else the nearest widths of the
        grid no larger than it."""
        if base.width:
            return [UNCHANGED] * len(items)
        best = self.best_student(run, base)
        if best is None:
            return None
        width = best.genome.get("width", {})
        # where latency steers, "no larger" means no slower
        size = run.latency or run.ctx.spec.predict_params
        return grid_widths(
            [width.get(k, 1.0) for k in items],
            lambda choice: size(self.genome(run, base, items, choice)),
            size(Genome.from_dict(best.genome)),
        )
