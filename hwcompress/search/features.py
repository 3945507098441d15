"""Per-step input features for the policies: one vector per removable unit or channel group.

The features describe a layer by kind, channels, kernel, stride, padding, skip connection,
its share of the parameters and its share of the time, with a fixed length, so a policy
trained on one teacher reads any other teacher (the N2N transfer result). The time share of
a channel group is what halving it saves of the student's predicted latency on the run's
device (:func:`hwcompress.search.latency_model.group_sensitivity`), so the shrinkage policy
sees where time is spent (early, high-resolution layers), not only where parameters are; a
run without a latency model gives the share of MACs, and units and layers their MACs share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from hwcompress.arch.genome import Genome
from hwcompress.arch.spec import ArchSpec, GroupSpec, LayerSpec, UnitSpec

KINDS = ("residual", "conv", "dwconv", "linear")
FEATURE_DIM = len(KINDS) + 8


def _vector(
    kind: str,
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int,
    padding: int,
    skip: bool,
    param_share: float,
    time_share: float,
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
        time_share,
    ]


def _total(spec: ArchSpec) -> int:
    return max(1, sum(layer.params for layer in spec.layers))


def _macs(spec: ArchSpec) -> dict[str, int]:
    """Each layer's MACs in the teacher (:meth:`ArchSpec.costs` of the full genome)."""
    return {c.name: c.macs for c in spec.costs(Genome())}


def unit_features(spec: ArchSpec, units: tuple[UnitSpec, ...] | None = None) -> torch.Tensor:
    """Features of each removable unit, shape ``(len(units), FEATURE_DIM)``."""
    units = spec.units if units is None else units
    total = _total(spec)
    macs = _macs(spec)
    all_macs = max(1, sum(macs.values()))
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
                sum(macs.get(la.name, 0) for la in layers) / all_macs,
            )
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), FEATURE_DIM)


def group_features(
    spec: ArchSpec, groups: tuple[GroupSpec, ...], time_share: dict[str, float] | None = None
) -> torch.Tensor:
    """Features of each channel group, shape ``(len(groups), FEATURE_DIM)``.

    Args:
        spec: The teacher's spec.
        groups: The groups, in decision order.
        time_share: Each group's share of the student's latency (default: of its MACs).
    """
    total = _total(spec)
    if time_share is None:
        time_share = group_sensitivity(spec, [g.key for g in groups], None)
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
                time_share.get(group.key, 0.0),
            )
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), FEATURE_DIM)


def layer_features(spec: ArchSpec, names: list[str]) -> torch.Tensor:
    """Features of conv/linear layers by module name, shape ``(len(names), FEATURE_DIM)``."""
    total = _total(spec)
    macs = _macs(spec)
    all_macs = max(1, sum(macs.values()))
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
                macs.get(name, 0) / all_macs,
            )
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), FEATURE_DIM)


def group_sensitivity(
    spec: ArchSpec,
    keys: Sequence[str],
    predict: Callable[[Genome], float] | None,
    base: Genome | None = None,
) -> dict[str, float]:
    """What each channel group costs in time: the share of ``base``'s predicted latency
    saved by halving that group alone (with no model: the share of MACs saved instead,
    the best proxy a device-blind run has)."""
    base = base or Genome()
    if predict is None:

        def predict(g: Genome) -> float:
            return float(spec.predict_macs(g))

    full = max(predict(base), 1e-12)
    out = {}
    for key in keys:
        width = dict(base.width)
        width[key] = width.get(key, 1.0) / 2
        halved = Genome(keep=dict(base.keep), width=width, kernel=dict(base.kernel))
        out[key] = max(0.0, (full - predict(halved)) / full)
    return out
