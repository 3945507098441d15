"""Per-step input features for the policies: one vector per removable unit or channel group.

The features describe a layer by kind, channels, kernel, stride, padding, skip connection and
its share of the parameters, with a fixed length, so a policy trained on one teacher reads
any other teacher (the N2N transfer result).
"""

from __future__ import annotations

import math

import torch

from hwcompress.arch.spec import ArchSpec, GroupSpec, LayerSpec, UnitSpec

KINDS = ("residual", "conv", "dwconv", "linear")
FEATURE_DIM = len(KINDS) + 7


def _vector(
    kind: str,
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int,
    padding: int,
    skip: bool,
    param_share: float,
) -> list[float]:
    return [
        *(1.0 if kind == k else 0.0 for k in KINDS),
        math.log2(in_ch + 1) / 12,
        math.log2(out_ch + 1) / 12,
        kernel / 7,
        stride / 2,
        padding / 3,
        1.0 if skip else 0.0,
        param_share,
    ]


def _total(spec: ArchSpec) -> int:
    return max(1, sum(layer.params for layer in spec.layers))


def unit_features(spec: ArchSpec, units: tuple[UnitSpec, ...] | None = None) -> torch.Tensor:
    """Features of each removable unit, shape ``(len(units), FEATURE_DIM)``."""
    units = spec.units if units is None else units
    total = _total(spec)
    rows = []
    for unit in units:
        layers = [spec.layer(n) for n in unit.layers]
        convs = [la for la in layers if la.kind in ("conv", "dwconv", "linear")] or layers
        rows.append(
            _vector(
                unit.kind,
                convs[0].in_channels,
                convs[-1].out_channels,
                max(max(la.kernel) for la in convs),
                max(la.stride for la in convs),
                max(la.padding for la in convs),
                unit.kind == "residual",
                sum(la.params for la in layers) / total,
            )
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), FEATURE_DIM)


def group_features(spec: ArchSpec, groups: tuple[GroupSpec, ...]) -> torch.Tensor:
    """Features of each channel group, shape ``(len(groups), FEATURE_DIM)``."""
    total = _total(spec)
    rows = []
    for group in groups:
        producers: list[LayerSpec] = [spec.layer(n) for n in group.producers]
        touching = [la for la in spec.layers if group.key in (la.in_group, la.out_group)]
        first = producers[0] if producers else touching[0]
        rows.append(
            _vector(
                first.kind,
                first.in_channels,
                group.channels,
                max(first.kernel),
                first.stride,
                first.padding,
                len(producers) > 1,
                sum(la.params for la in touching) / total,
            )
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), FEATURE_DIM)


def layer_features(spec: ArchSpec, names: list[str]) -> torch.Tensor:
    """Features of conv/linear layers by module name, shape ``(len(names), FEATURE_DIM)``."""
    total = _total(spec)
    rows = []
    for name in names:
        la = spec.layer(name)
        rows.append(
            _vector(
                la.kind,
                la.in_channels,
                la.out_channels,
                max(la.kernel),
                la.stride,
                la.padding,
                la.skip,
                la.params / total,
            )
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), FEATURE_DIM)
