"""Kernel-wise variational pruning: information dropout over the spatial positions of kernels.

Zhan et al. prune the 2-D kernels of a CNN position by position: a 3×3 kernel may become 3×1,
1×3 or 1×1. Each conv with a k×k kernel gets one learned noise scale per kernel position
``(i, j)``, shared by all its filters. While fine-tuning, every weight at that position is
multiplied by log-normal noise ``exp(σ·z − σ²/2)``, drawn per sample (information dropout,
Achille & Soatto: mean 1, so the expected weight is unchanged; a draw shared by the batch
would be undone by batch-norm), and the loss adds the
information-dropout KL term ``−log σ`` per position (log-uniform prior), averaged over all
positions and weighted by ``beta``. The data term keeps σ small where the position matters
and, where σ grows, drives that position's weights towards zero (noisy weights add variance to
the output); the KL term pushes σ to its cap where the position does not matter. Positions
whose σ ends above ``prune_sigma`` are unimportant.

Surgery is real: a layer whose off-centre rows (or columns) are all unimportant gets a kernel
cropped to its centre row (column), and its padding is reduced by the same amount on both
sides so every output keeps its shape. The centre position is always kept (1×1 at least).
On real data the σ maps are often too even for any band to pass the threshold; the noise
still ranks them, and ``share`` drops that fraction of the bands with the most noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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


@dataclass(frozen=True, kw_only=True)
class KernelPruneConfig:
    """Settings of kernel-wise variational pruning.

    Attributes:
        steps: Optimiser steps of the fine-tune with the noise on (the training set is
            repeated as needed; steps, not epochs, so small and large datasets get the same
            number of updates of the noise scales).
        lr: Adam learning rate of the weights.
        gate_lr: Adam learning rate of the noise scales.
        beta: Weight of the KL term (mean over kernel positions).
        sigma_max: Cap of the noise scale σ.
        prune_sigma: Positions whose σ ends above this are removed.
        ce_weight: Weight of the cross-entropy term beside the L2 on teacher logits.
        seed: Seed of the noise and shuffling.
        device: Where the fine-tune runs (the model is handed back on the CPU).
    """

    steps: int = 600
    lr: float = 2e-3
    gate_lr: float = 2e-2
    beta: float = 1.0
    sigma_max: float = 1.0
    prune_sigma: float = 0.5
    ce_weight: float = 0.5
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


class KernelGate(nn.Module):
    """Wraps a conv; adds information-dropout noise per kernel position while training.

    Args:
        conv: The convolution (kept as ``.conv``; its weights stay the real ones).
        sigma_max: Cap of σ.
        init_sigma: Starting σ (small: the network starts as it was).
    """

    def __init__(self, conv: nn.Conv2d, sigma_max: float = 1.0, init_sigma: float = 0.02) -> None:
        super().__init__()
        self.conv = conv
        self.sigma_max = sigma_max
        p = min(max(init_sigma / sigma_max, 1e-4), 1 - 1e-4)
        self.rho = nn.Parameter(torch.full(tuple(conv.kernel_size), math.log(p / (1 - p))))

    @property
    def sigma(self) -> torch.Tensor:
        """Noise scale per kernel position, shape ``(kh, kw)``."""
        return self.sigma_max * torch.sigmoid(self.rho)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if not self.training:
            return conv(x)
        # Per-sample noise: a draw shared by a whole batch would be undone by batch-norm.
        # The k×k conv is the sum over kernel positions of 1×1 convs of shifted inputs,
        # each scaled by that sample's noise at that position (same arithmetic as the conv).
        s = self.sigma
        noise = torch.exp(s * torch.randn((x.shape[0], *s.shape), device=x.device) - 0.5 * s * s)
        kh, kw = conv.kernel_size
        sh, sw = conv.stride
        ph, pw = _padding(conv)
        xp = F.pad(x, (pw, pw, ph, ph))
        h_out = (x.shape[2] + 2 * ph - kh) // sh + 1
        w_out = (x.shape[3] + 2 * pw - kw) // sw + 1
        out = None
        for i in range(kh):
            for j in range(kw):
                shifted = xp[
                    :, :, i : i + sh * (h_out - 1) + 1 : sh, j : j + sw * (w_out - 1) + 1 : sw
                ]
                part = F.conv2d(
                    shifted, conv.weight[:, :, i : i + 1, j : j + 1], groups=conv.groups
                )
                part = part * noise[:, i, j].view(-1, 1, 1, 1)
                out = part if out is None else out + part
        assert out is not None
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1)
        return out

    def kl(self) -> torch.Tensor:
        """Information-dropout KL, ``−log σ`` per kernel position, summed over the layer."""
        return -torch.log(self.sigma).sum()


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    """The conv's numeric padding (gated convs never use string padding, see ``_prunable``)."""
    padding = conv.padding
    assert not isinstance(padding, str)
    ph, pw = padding
    assert isinstance(ph, int) and isinstance(pw, int)
    return ph, pw


def _prunable(conv: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and max(conv.kernel_size) > 1
        and all(k % 2 == 1 for k in conv.kernel_size)
        and isinstance(conv.padding, tuple)
        and conv.padding_mode == "zeros"
        and conv.dilation == (1, 1)
    )


def attach_gates(model: nn.Module, sigma_max: float = 1.0) -> dict[str, KernelGate]:
    """Wraps every odd-sized k×k (k > 1) convolution of ``model`` in a :class:`KernelGate`.

    Returns:
        The gates by module name.
    """
    gates: dict[str, KernelGate] = {}
    for name, m in list(model.named_modules()):
        if _prunable(m) and name:
            gate = KernelGate(m, sigma_max)  # type: ignore[arg-type]
            model.set_submodule(name, gate)
            gates[name] = gate
    return gates


def detach_gates(model: nn.Module) -> None:
    """Puts the plain convolutions back in place of their gates."""
    for name, m in list(model.named_modules()):
        if isinstance(m, KernelGate):
            model.set_submodule(name, m.conv)


def kl_term(gates: dict[str, KernelGate]) -> torch.Tensor:
    """Sum of the gates' KL terms."""
    return torch.stack([g.kl() for g in gates.values()]).sum() if gates else torch.zeros(())


def kernel_masks(
    gates: dict[str, KernelGate] | dict[str, torch.Tensor],
    prune_sigma: float,
    share: float = 0.0,
) -> dict[str, tuple[int, int]]:
    """The kernel size each gated layer keeps.

    A layer's off-centre rows form one *band* (dropping it leaves the centre row), its
    off-centre columns another. A band is dropped when every position in it is unimportant
    (σ > ``prune_sigma``) and, with ``share`` > 0, also when it is among the ``share`` of all
    bands with the highest mean σ: information dropout ranks positions by how much noise the
    network tolerates there even when none reaches the cap.

    Args:
        gates: The gates, or their σ maps ``(kh, kw)``, by layer name.
        prune_sigma: σ above which a position is unimportant.
        share: Fraction of all bands dropped by rank (0: by the threshold alone).

    Returns:
        The new ``(kh, kw)`` per layer name (equal to the old size where nothing is pruned).
    """
    sigmas = {
        name: (g.sigma if isinstance(g, KernelGate) else torch.as_tensor(g)).detach()
        for name, g in gates.items()
    }
    bands: list[tuple[float, str, int]] = []  # (mean σ, layer, axis)
    drop: set[tuple[str, int]] = set()
    for name, sigma in sigmas.items():
        kh, kw = sigma.shape
        ch, cw = kh // 2, kw // 2
        off = (
            torch.cat([sigma[:ch], sigma[ch + 1 :]]),
            torch.cat([sigma[:, :cw], sigma[:, cw + 1 :]], dim=1),
        )
        for axis, band in enumerate(off):
            if band.numel():
                bands.append((float(band.mean()), name, axis))
                if bool((band > prune_sigma).all()):
                    drop.add((name, axis))
    if share > 0 and bands:
        ranked = sorted(bands, key=lambda b: -b[0])
        drop.update((name, axis) for _, name, axis in ranked[: round(share * len(bands))])
    sizes: dict[str, tuple[int, int]] = {}
    for name, sigma in sigmas.items():
        kh, kw = sigma.shape
        sizes[name] = (1 if (name, 0) in drop else kh, 1 if (name, 1) in drop else kw)
    return sizes


def crop_kernels(model: nn.Module, sizes: dict[str, tuple[int, int]]) -> dict[str, str]:
    """Replaces each named conv by one with its kernel cropped to the centre ``sizes[name]``.

    Padding shrinks by the rows/columns removed on each side (times the dilation), so output
    shapes are unchanged; stride, dilation, groups and padding mode are kept.

    Returns:
        ``"3×3 → 3×1"`` style descriptions of the layers that changed.

    Raises:
        ValueError: If a layer's padding is too small to remove the rows/columns.
    """
    changed: dict[str, str] = {}
    for name, (nh, nw) in sizes.items():
        conv = model.get_submodule(name)
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"'{name}' is not a Conv2d")
        kh, kw = conv.kernel_size
        if (nh, nw) == (kh, kw):
            continue
        dh, dw = (kh - nh) // 2, (kw - nw) // 2
        ph, pw = _padding(conv)
        # each removed tap spans ``dilation`` pixels of the input
        sh, sw = dh * conv.dilation[0], dw * conv.dilation[1]
        if ph < sh or pw < sw:
            raise ValueError(f"'{name}': padding {conv.padding} too small to crop to {nh}×{nw}")
        new = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            (nh, nw),
            stride=(conv.stride[0], conv.stride[1]),
            padding=(ph - sh, pw - sw),
            dilation=(conv.dilation[0], conv.dilation[1]),
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
        )
        with torch.no_grad():
            new.weight.copy_(conv.weight[:, :, dh : dh + nh, dw : dw + nw])
            if conv.bias is not None and new.bias is not None:
                new.bias.copy_(conv.bias)
        model.set_submodule(name, new)
        changed[name] = f"{kh}×{kw} → {nh}×{nw}"
    if changed and isinstance(model, torch.fx.GraphModule):
        model.recompile()
    return changed


@dataclass
class KernelPruneResult:
    """What variational kernel pruning did."""

    sizes: dict[str, tuple[int, int]]
    changed: dict[str, str]
    sigma: dict[str, list[list[float]]]
    params_before: int
    params_after: int


def variational_fine_tune(
    model: nn.Module,
    teacher: nn.Module,
    data: Any,
    config: KernelPruneConfig | None = None,
    *,
    teacher_logits: Any = None,
) -> dict[str, list[list[float]]]:
    """Fine-tunes ``model`` with information-dropout noise on its kernel positions.

    The fine-tune distils from ``teacher`` (L2 on logits + cross-entropy) plus the scaled KL
    term. ``model`` keeps its fine-tuned weights and plain convolutions (the gates are
    removed) and is left in eval mode; nothing is cropped yet (see :func:`kernel_masks` and
    :func:`crop_kernels`).

    Returns:
        The learned σ map of every gated layer.
    """
    from hwcompress.train.device import resolve_device, to_device
    from hwcompress.train.distill import TeacherLogits

    config = config or KernelPruneConfig()
    torch.manual_seed(config.seed)
    gates = attach_gates(model, config.sigma_max)
    device = resolve_device(config.device)
    model.to(device)
    cached = teacher_logits or TeacherLogits(teacher, data.train, seed=config.seed)
    n_positions = max(1, sum(g.rho.numel() for g in gates.values()))
    gate_params = {id(g.rho) for g in gates.values()}
    groups: list[dict[str, Any]] = [
        {"params": [p for p in model.parameters() if id(p) not in gate_params]},
        {"params": [g.rho for g in gates.values()], "lr": config.gate_lr},
    ]
    opt = torch.optim.Adam(groups, lr=config.lr)
    model.train()
    step = 0
    while step < config.steps:
        for batch in cached.loader():
            x, y, z_t = to_device(batch, device)
            z_s = model(x)
            loss = F.mse_loss(z_s, z_t) + config.ce_weight * F.cross_entropy(z_s, y)
            loss = loss + config.beta * kl_term(gates) / n_positions
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step >= config.steps:
                break
    model.eval().cpu()
    sigma = {n: g.sigma.detach().tolist() for n, g in gates.items()}
    detach_gates(model)
    return sigma


def variational_kernel_prune(
    model: nn.Module,
    teacher: nn.Module,
    data: Any,
    config: KernelPruneConfig | None = None,
    *,
    teacher_logits: Any = None,
    share: float = 0.0,
) -> KernelPruneResult:
    """Fine-tunes ``model`` with information-dropout noise on its kernels, then crops them.

    ``model`` is modified in place: it ends with smaller kernels where positions were
    unimportant, no gates, in eval mode. Distil it again afterwards to recover accuracy.

    Args:
        model: A float student (any module whose convs can be replaced by name).
        teacher: The teacher whose logits are matched.
        data: A :class:`~hwcompress.data.DataBundle`.
        config: Settings.
        teacher_logits: Shared :class:`~hwcompress.train.TeacherLogits`.
        share: Also drop this fraction of kernel bands by σ rank (:func:`kernel_masks`).
    """
    config = config or KernelPruneConfig()
    params_before = sum(p.numel() for p in model.parameters())
    sigma = variational_fine_tune(model, teacher, data, config, teacher_logits=teacher_logits)
    sizes = kernel_masks({n: torch.tensor(v) for n, v in sigma.items()}, config.prune_sigma, share)
    changed = crop_kernels(model, sizes)
    return KernelPruneResult(
        sizes=sizes,
        changed=changed,
        sigma=sigma,
        params_before=params_before,
        params_after=sum(p.numel() for p in model.parameters()),
    )
