"""The search's stages by name: the run looks them up here (a registry apart from both the
run and the stages, so neither imports the other)."""

from __future__ import annotations

from hwcompress.search.channels_stage import ChannelsStage
from hwcompress.search.kernel_stage import KernelStage
from hwcompress.search.names import StageName
from hwcompress.search.quant_stage import QuantizationStage
from hwcompress.search.shrink_stage import ShrinkageStage
from hwcompress.search.stages import RemovalStage, Stage

__all__ = ["stage_registry"]


def stage_registry() -> dict[str, Stage]:
    """A fresh stage object per name (stages keep per-run state)."""
    return {
        StageName.REMOVAL: RemovalStage(),
        StageName.SHRINKAGE: ShrinkageStage(),
        StageName.CHANNELS: ChannelsStage(),
        StageName.KERNELS: KernelStage(),
        StageName.QUANTIZATION: QuantizationStage(),
    }
