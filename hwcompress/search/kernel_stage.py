"""drl-prune's kernel stage: kernel-wise variational pruning of the run's best float student.

For each KL weight in ``config.kernel_betas``, one fine-tune with information-dropout noise on
the kernel positions; then one episode per share in ``config.kernel_shares``: crop the bands
the σ maps call unimportant (by the threshold, plus that share of the noisiest bands), real
surgery, then evaluate the cropped student like any candidate (distil from its fine-tuned
weights, export, measure, reward). Finished episodes are in the journal and are not repeated
(a fine-tune is redone, identically, only when one of its episodes is missing).
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING

import torch

from hwcompress.arch import Genome, build_student
from hwcompress.search.candidate import Candidate
from hwcompress.search.evaluate import structure_of
from hwcompress.search.names import StageName
from hwcompress.search.stages import Stage

if TYPE_CHECKING:
    from hwcompress.search.run_api import StageRun


class KernelStage(Stage):
    """Crops kernels by variational pruning; no controller, no seeds."""

    name = StageName.KERNELS

    def planned(self, run: StageRun) -> float:
        return float(2 * len(run.config.kernel_betas) * len(run.config.kernel_shares))

    def execute(self, run: StageRun, index: int) -> tuple[Candidate | None, bool]:
        from hwcompress.data.teachers import load_checkpoint
        from hwcompress.prune.kernel import (
            KernelPruneConfig,
            crop_kernels,
            kernel_masks,
            variational_fine_tune,
        )

        prev = run.best_float()
        if prev is None:
            run.reporter.message("kernels skipped: no float student to start from")
            return None, False
        config, ctx = run.config, run.ctx
        deadline = run.clock.deadline(self.name)
        base = Genome.from_dict(prev.genome)
        state = load_checkpoint(ctx.run_dir / prev.artifacts["weights"])["state_dict"]
        start = build_student(ctx.teacher, structure_of(base), ctx.data.input_shape, spec=ctx.spec)
        start.load_state_dict(state)
        shares = config.kernel_shares
        episodes = len(config.kernel_betas) * len(shares)
        done = {ep for st, ep in run.finished if st == self.name}
        run.reporter.stage(
            self.name, episodes, 1, min(set(range(episodes)) - done, default=episodes)
        )
        for bi, beta in enumerate(config.kernel_betas):
            todo = [si for si in range(len(shares)) if bi * len(shares) + si not in done]
            if not todo:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return self._best(run, prev), True
            prune_config = KernelPruneConfig(
                beta=beta,
                steps=config.kernel_steps,
                seed=config.seed + bi,
                device=ctx.distill_config.device,
            )
            tuned = copy.deepcopy(start)
            sigma = variational_fine_tune(
                tuned, ctx.teacher, ctx.data, prune_config, teacher_logits=ctx.teacher_logits
            )
            maps = {n: torch.tensor(v) for n, v in sigma.items()}
            for si in todo:
                ep = bi * len(shares) + si
                if deadline is not None and time.perf_counter() > deadline:
                    return self._best(run, prev), True
                model = copy.deepcopy(tuned)
                sizes = kernel_masks(maps, prune_config.prune_sigma, shares[si])
                cropped = crop_kernels(model, sizes)
                kernel = dict(base.kernel)
                for name, size in sizes.items():
                    if tuple(size) != tuple(ctx.spec.layer(name).kernel):
                        kernel[name] = list(size)
                genome = Genome(keep=dict(base.keep), width=dict(base.width), kernel=kernel)
                (cand,) = run.evaluate_episode(
                    [genome],
                    self.name,
                    ep,
                    config.method,
                    init_state=model.state_dict(),
                    deadline=deadline,
                )
                run.journal.append(
                    {
                        "type": "episode",
                        "stage": self.name,
                        "episode": ep,
                        "rewards": [cand.reward],
                        "mean_reward": cand.reward,
                        "loss": None,
                        "beta": beta,
                        "share": shares[si],
                        "cropped": cropped,
                    }
                )
                run.reporter.episode(self.name, ep, cand.reward, run.best_so_far())
        return self._best(run, prev), False

    def _best(self, run: StageRun, prev: Candidate) -> Candidate:
        best = run.stage_best(self.name, extra=[prev]) or prev
        if best is prev:
            run.reporter.message(
                "kernels: no cropped student beat the channel student; it carries on"
            )
        return best
