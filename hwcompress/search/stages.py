"""The search's stages, one registered object each.

A stage says what it decides on (its items and their features), how a controller's actions
become a genome, which seeds a practitioner would try first, which students it starts from
and how it keeps proposals within the size caps. :class:`PolicyStage` runs the episodes
shared by every policy-driven stage (N2N's removal here, its shrinkage in
:mod:`hwcompress.search.shrink_stage`, the quantization stage in
:mod:`hwcompress.search.quant_stage`); the kernel stage
(:mod:`hwcompress.search.kernel_stage`) runs its own fine-tunes. A new stage is one class
and one entry of :func:`hwcompress.search.stage_registry.stage_registry`. Stages see the run through
:class:`~hwcompress.search.run_api.StageRun`, never the runner itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from hwcompress.arch import Genome
from hwcompress.errors import ConfigError
from hwcompress.files import save_atomic
from hwcompress.search.candidate import Candidate
from hwcompress.search.features import (
    unit_features,
)
from hwcompress.search.methods import METHODS, StageController
from hwcompress.search.names import StageName
from hwcompress.search.rollouts import Prepared, draw
from hwcompress.search.seeds import NEAR_BUDGET, NEAR_BUDGET_TARGET, width_seeds
from hwcompress.search.steer import untrained_latency
from hwcompress.search.target import fit_genome

if TYPE_CHECKING:
    from hwcompress.search.run_api import StageRun


def near_budget(run: StageRun) -> float:
    """The share of a latency budget the seeds' ladder rungs must spend in this run."""
    return NEAR_BUDGET_TARGET if run.ctx.reward_config.objective == "accuracy" else NEAR_BUDGET


class Stage:
    """What every stage provides to the run."""

    name: str = ""

    def planned(self, run: StageRun) -> float:
        """Candidates it plans to evaluate (its share of a time budget)."""
        return float(run.config.episodes * run.config.rollouts)

    def execute(self, run: StageRun, index: int) -> tuple[Candidate | None, bool]:
        """Runs the stage; returns its best candidate and whether its time ran out."""
        raise NotImplementedError


class PolicyStage(Stage):
    """Episodes of rollouts from a controller, after the stage's seeds."""

    def prepare(self, run: StageRun) -> str | None:
        """Sets up the run for this stage; returns why it is skipped, if it is."""
        return None

    def bases(self, run: StageRun) -> list[Genome]:
        """The students it starts from (rollout ``i`` uses base ``i % len(bases)``)."""
        return [run.start]

    def items(self, run: StageRun, base: Genome) -> tuple[list[str], torch.Tensor]:
        """The decision items of ``base`` and their features."""
        raise NotImplementedError

    def genome(self, run: StageRun, base: Genome, items: list[str], actions: list[Any]) -> Genome:
        """The genome a controller's actions describe."""
        raise NotImplementedError

    def seeds(self, run: StageRun, base: Genome, items: list[str]) -> list[tuple[str, Genome]]:
        """The baselines evaluated before any policy sample."""
        return width_seeds(
            run.ctx.teacher,
            run.ctx.spec,
            run.start,
            run.caps,
            run.config.seed_ratios,
            latency=run.latency,
            multiple=run.multiple,
            measured=untrained_latency(run.ctx) if run.latency is not None else None,
            near_budget=near_budget(run),
        )

    def own_sample(self, cand: Candidate) -> bool:
        """Whether ``cand`` is one of this stage's policy samples (not a seed): what the
        stage decides from before its episodes leaves them out, so a resumed run decides
        as the first one did."""
        return cand.stage == self.name and cand.episode >= 0

    def worth_sampling(self, run: StageRun, prepared: list[Prepared]) -> list[Prepared]:
        """The prepared bases the policy's rollouts go to, once the seeds are evaluated
        (best first; here all of them, in order)."""
        return prepared

    def fit(self, run: StageRun, genome: Genome) -> Genome:
        """The genome clamped to the run's size caps and predicted latency budget (AMC's
        clamp), channels snapped to the device's multiple; unchanged if it fits, except
        where latency steers a target run (:attr:`StageRun.fill`): then scaled up to the
        budget too."""
        return (
            fit_genome(
                run.ctx.spec,
                genome,
                run.caps,
                latency=run.latency,
                multiple=run.multiple,
                fill=run.fill,
            )
            or genome
        )

    def rollouts(self, run: StageRun, episode: int) -> int:
        """The new students episode ``episode`` draws (the run's rollouts per episode)."""
        return run.config.rollouts

    def demonstration(self, run: StageRun, base: Genome, items: list[str]) -> list[int] | None:
        """The actions that rebuild the run's best student of ``base``'s structure so far
        (None where the stage's actions cannot express it); the policy starts near it."""
        return None

    def controller(self, run: StageRun, base: Genome, items: list[str]) -> StageController:
        """The method's controller for this stage."""
        return METHODS[run.config.method](self.name)

    def execute(self, run: StageRun, index: int) -> tuple[Candidate | None, bool]:
        reason = self.prepare(run)
        if reason:
            run.reporter.message(f"{self.name} skipped: {reason}")
            return None, False
        prepared = []
        for base in self.bases(run):
            items, features = self.items(run, base)
            if items:
                prepared.append((base, items, features))
        if not prepared:
            run.reporter.message(f"{self.name}: nothing to decide for this teacher; skipped")
            return None, False
        config = run.config
        base0, items0, _ = prepared[0]
        controller = self.controller(run, base0, items0)
        # the policy's first weights come from the global generator, whose state a resumed
        # run (its earlier students read back, not trained) does not share: keep them
        initial = run.policies_dir / f"{self.name}_initial.pt"
        if initial.is_file():
            controller.load_state_dict(torch.load(initial, weights_only=True))
        else:
            save_atomic(controller.state_dict(), initial)
        if self.name in run.init_state:
            try:
                controller.load_state_dict({"policy": run.init_state[self.name]["policy"]})
            except (RuntimeError, KeyError) as err:
                raise ConfigError(
                    f"{{init_policy}}: its {self.name} policy does not fit this version's "
                    f"policy ({str(err).splitlines()[0][:160]}); it was saved by another "
                    "hwcompress version (the policies now read 12 features a layer, one of "
                    "them its share of the latency); transfer a policy saved by this version"
                ) from None
        done = sorted(ep for st, ep in run.finished if st == self.name)
        start_ep = done[-1] + 1 if done else 0
        # the last journaled episode's policy (``_latest`` may be one episode further: it is
        # written before the episode's record)
        latest = run.policies_dir / f"{self.name}_ep{start_ep - 1}.pt"
        if done and latest.is_file():
            controller.load_state_dict(torch.load(latest, weights_only=True))
        deadline = run.clock.deadline(self.name)
        seeds = self.seeds(run, base0, items0) if config.seed_ratios else []
        if seeds and start_ep == 0:
            run.reporter.seeds(self.name, len(seeds))
            run.evaluate_episode(
                [g for _, g in seeds],
                self.name,
                -1,
                "baseline",
                labels=[s for s, _ in seeds],
                deadline=deadline,
            )
        prepared = self.worth_sampling(run, prepared)
        base0, items0, _ = prepared[0]
        if len(prepared) > 1:
            run.reporter.message(
                f"{self.name}: starting from the run's {len(prepared)} best structures"
            )
        imitate = getattr(controller, "imitate", None)
        if start_ep == 0 and imitate is not None and self.name not in run.init_state:
            # each structure's rollouts start around its own best student
            demos = [
                (features, shown)
                for base, items, features in prepared
                if (shown := self.demonstration(run, base, items)) is not None
            ]
            if demos:
                imitate(demos)
                run.reporter.message(
                    f"{self.name}: the policy starts around the best student so far"
                    + (f" of each of {len(demos)} structures" if len(demos) > 1 else "")
                )
        run.reporter.stage(self.name, config.episodes, config.rollouts, start_ep)
        for ep in range(start_ep, config.episodes):
            if deadline is not None and time.perf_counter() > deadline:
                return run.stage_best(self.name), True
            gen = torch.Generator().manual_seed(config.seed * 1_000_003 + index * 10_007 + ep)
            samples, genomes, clamped = draw(
                run, self, controller, prepared, gen, ep, self.rollouts(run, ep)
            )
            cands = run.evaluate_episode(genomes, self.name, ep, config.method, deadline=deadline)
            rewards = [c.reward for c in cands]
            loss = controller.update(samples, rewards)
            run.save_policy(self.name, ep, controller.state_dict(), rewards, loss, clamped)
        return run.stage_best(self.name), False


class RemovalStage(PolicyStage):
    """N2N's first stage: keep or remove each removable unit (bidirectional LSTM)."""

    name = StageName.REMOVAL

    def items(self, run: StageRun, base: Genome) -> tuple[list[str], torch.Tensor]:
        spec = run.ctx.spec
        return [u.name for u in spec.units], unit_features(spec)

    def genome(self, run: StageRun, base: Genome, items: list[str], actions: list[Any]) -> Genome:
        return Genome(
            keep={n: bool(a) for n, a in zip(items, actions, strict=True)},
            width=dict(base.width),
            kernel=dict(base.kernel),
        )

    def demonstration(self, run: StageRun, base: Genome, items: list[str]) -> list[int] | None:
        """Where proposals are scaled to a latency budget (:attr:`StageRun.fill`: the scale
        is the budget's, the kept units are the decision), the kept units of the run's best
        student so far (the latency-matched seeds), so the policy starts with one or two
        removals from it rather than half the network's; elsewhere none (a keep-all start
        there proposes barely compressed students)."""
        if not run.fill:
            return None
        best = run.best_of([c for c in run.floats() if c.feasible and not self.own_sample(c)])
        if best is None:
            return None
        keep = Genome.from_dict(best.genome).keep
        return [int(keep.get(n, True)) for n in items]
