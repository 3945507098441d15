"""The search's stage names, as an enum below every module that uses them."""

from __future__ import annotations

from hwcompress.enums import NameEnum

__all__ = ["StageName"]


class StageName(NameEnum):
    """The search's stages (equal to their plain names, as journaled and on the command line).

    The stage objects that run them are registered in :mod:`hwcompress.search.stage_registry`.
    """

    #: N2N's layer removal (bidirectional LSTM).
    REMOVAL = "removal"
    #: N2N's layer shrinkage (LSTM over the kept layers).
    SHRINKAGE = "shrinkage"
    #: Zhan et al.'s DRL channel pruning.
    CHANNELS = "channels"
    #: Zhan et al.'s kernel-wise variational pruning.
    KERNELS = "kernels"
    #: The per-layer bit-width agent.
    QUANTIZATION = "quantization"
