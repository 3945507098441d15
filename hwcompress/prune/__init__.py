"""Pruning methods of the second seed paper (Zhan et al.): kernel-wise variational pruning."""

from hwcompress.prune.kernel import (
    KernelGate,
    KernelPruneConfig,
    attach_gates,
    crop_kernels,
    detach_gates,
    kernel_masks,
    kl_term,
    variational_fine_tune,
    variational_kernel_prune,
)

__all__ = [
    "KernelGate",
    "KernelPruneConfig",
    "attach_gates",
    "crop_kernels",
    "detach_gates",
    "kernel_masks",
    "kl_term",
    "variational_fine_tune",
    "variational_kernel_prune",
]
