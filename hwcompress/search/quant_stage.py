"""The quantization stage: a weight bit-width per conv and linear layer among the device's
integer widths (an LSTM policy, as N2N's shrinkage), for the run's best float student."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from hwcompress.arch import Genome, build_student
from hwcompress.search.features import layer_features
from hwcompress.search.methods import METHODS, StageController
from hwcompress.search.names import StageName
from hwcompress.search.stages import PolicyStage

if TYPE_CHECKING:
    from hwcompress.search.run_api import StageRun

__all__ = ["QuantizationStage", "quantization_choices"]


class QuantizationStage(PolicyStage):
    """A weight bit-width per conv and linear layer among the device's integer widths, for
    the run's best float student so far."""

    name = StageName.QUANTIZATION

    def prepare(self, run: StageRun) -> str | None:
        from hwcompress.data.teachers import load_checkpoint

        self.choices, reason = quantization_choices(run.ctx.profile)
        if reason:
            return reason
        ctx = run.ctx
        ctx.act_bits = (
            8
            if 8 in ctx.profile.bits.activation
            else min(b for b in ctx.profile.bits.activation if b <= 8)
        )
        best = run.best_float()
        self.base = Genome.from_dict(best.genome) if best is not None else run.start
        ctx.base_state = (
            load_checkpoint(run.out / best.artifacts["weights"])["state_dict"]
            if best is not None
            else run.start_state
        )
        return None

    def bases(self, run: StageRun) -> list[Genome]:
        return [self.base]

    def items(self, run: StageRun, base: Genome) -> tuple[list[str], torch.Tensor]:
        ctx = run.ctx
        student = build_student(ctx.teacher, base, ctx.spec.input_shape, spec=ctx.spec)
        names = [
            n
            for n, m in student.named_modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
        ]
        return names, layer_features(ctx.spec, names)

    def genome(self, run: StageRun, base: Genome, items: list[str], actions: list[Any]) -> Genome:
        return Genome(
            keep=dict(base.keep),
            width=dict(base.width),
            kernel=dict(base.kernel),
            weight_bits={n: int(self.choices[a]) for n, a in zip(items, actions, strict=True)},
        )

    def seeds(self, run: StageRun, base: Genome, items: list[str]) -> list[tuple[str, Genome]]:
        return [
            (f"uniform int{b:g}", self.genome(run, base, items, [i] * len(items)))
            for i, b in enumerate(self.choices)
        ]

    def fit(self, run: StageRun, genome: Genome) -> Genome:
        return genome

    def controller(self, run: StageRun, base: Genome, items: list[str]) -> StageController:
        return METHODS[run.config.method](self.name, self.choices)


def quantization_choices(profile: Any) -> tuple[tuple[float, ...], str | None]:
    """The integer weight bit-widths the device runs, or why there are none."""
    ints = tuple(sorted(b for b in profile.bits.weight if b <= 8))
    acts = [b for b in profile.bits.activation if b <= 8]
    if not ints or not acts:
        return (), (
            f"{profile.name} runs no integer kernels (weight bits "
            f"{', '.join(map(str, profile.bits.weight))}, activation bits "
            f"{', '.join(map(str, profile.bits.activation))}); its students stay in "
            "float"
        )
    return ints, None
