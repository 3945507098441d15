"""drl-prune's channel stage (Zhan et al.): a DDPG agent's continuous keep ratio per
channel group under a MACs budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hwcompress.arch import Genome
from hwcompress.search.methods import StageController
from hwcompress.search.names import StageName
from hwcompress.search.seeds import width_seeds
from hwcompress.search.shrink_stage import ShrinkageStage

if TYPE_CHECKING:
    from hwcompress.search.run_api import StageRun


class ChannelsStage(ShrinkageStage):
    """drl-prune's channel stage: a DDPG agent's continuous keep ratio per group under a
    MACs budget (the agent clamps its own actions to the budget)."""

    name = StageName.CHANNELS
    relative = False  # the agent's keep ratios are of the teacher's channels

    def rollouts(self, run: StageRun, episode: int) -> int:
        return run.config.rollouts

    def bases(self, run: StageRun) -> list[Genome]:
        return [run.start]

    def genome(self, run: StageRun, base: Genome, items: list[str], actions: list[Any]) -> Genome:
        from hwcompress.search.ddpg import with_widths

        return with_widths(base, items, actions, complete=True)

    def fit(self, run: StageRun, genome: Genome) -> Genome:
        return genome

    def macs_target(self, run: StageRun) -> float:
        """The agent's MACs budget: the FLOPs target, tightened by the run's MACs cap."""
        from hwcompress.search.ddpg import macs_target

        return macs_target(
            run.ctx.teacher_metrics["macs"], run.config.flops_target, run.caps.get("macs")
        )

    def seeds(self, run: StageRun, base: Genome, items: list[str]) -> list[tuple[str, Genome]]:
        caps = {**run.caps, "macs": self.macs_target(run)}
        return width_seeds(run.ctx.teacher, run.ctx.spec, run.start, caps, run.config.seed_ratios)

    def controller(self, run: StageRun, base: Genome, items: list[str]) -> StageController:
        from hwcompress.search.ddpg import DDPGConfig, DDPGController, MacsBudget

        agent = DDPGConfig()
        target = self.macs_target(run)
        return DDPGController(
            MacsBudget(run.ctx.spec, base, items, target, agent.min_keep),
            agent,
            seed=run.config.seed,
        )
