"""Tracing a teacher into its :class:`~hwcompress.arch.spec.ArchSpec`: which units can be
removed, which channel groups shrunk, and what each layer costs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from hwcompress.arch.genome import Genome
from hwcompress.arch.spec import ArchSpec, GroupSpec, LayerSpec, UnitSpec

__all__ = ["build_spec"]


def build_spec(model: nn.Module, input_shape: Sequence[int]) -> ArchSpec:
    """Traces ``model`` and lists its decision points.

    Args:
        model: The teacher (not modified).
        input_shape: Shape of one input batch, e.g. ``(1, 1, 8, 8)``.

    Returns:
        The spec: layers in execution order, removable units, channel groups.

    Raises:
        ModelError: If the model cannot be traced or run on that shape.
    """
    from hwcompress.arch.graph import analyze_graph, trace_model
    from hwcompress.fx import folds_into, node_shape

    a = analyze_graph(trace_model(model), input_shape)
    modules = dict(a.gm.named_modules())
    names = {id(m): name for name, m in modules.items()}
    unit_of = {name: u.name for u in a.units.values() for name in u.layers}
    in_residual = {name for u in a.units.values() if u.kind == "residual" for name in u.layers}
    layers = []
    for info in a.layers.values():
        m = info.module
        node_in = (info.node.all_input_nodes or [info.node])[0]
        kernel = tuple(getattr(m, "kernel_size", (1,)))
        out_shape = node_shape(info.node) or ()
        if info.node.op == "get_attr":  # a parameter used directly
            params = a.gm.get_parameter(str(info.node.target)).numel()
        else:
            params = sum(p.numel() for p in m.parameters(recurse=False))
        producer = folds_into(info.node, modules) if info.kind == "norm" else None
        macs = 0
        if info.kind == "other" and isinstance(m, nn.Linear) and out_shape:
            macs = m.in_features * m.out_features * math.prod(out_shape[1:-1])
        layers.append(
            LayerSpec(
                name=info.name,
                kind=info.kind,
                in_channels=getattr(
                    m, "in_channels", getattr(m, "in_features", getattr(m, "num_features", 0))
                ),
                out_channels=getattr(
                    m, "out_channels", getattr(m, "out_features", getattr(m, "num_features", 0))
                ),
                kernel=kernel,
                stride=int(getattr(m, "stride", (1,))[0]),
                padding=int(
                    p[0]
                    if isinstance(p := getattr(m, "padding", 0), tuple)
                    else (p if isinstance(p, int) else 0)
                ),
                in_group=a.key(info.in_gid),
                out_group=a.key(info.out_gid),
                factor=info.factor,
                bias=getattr(m, "bias", None) is not None,
                params=params,
                unit=unit_of.get(info.name),
                skip=info.name in in_residual,
                input_shape=node_shape(node_in) or (),
                output_shape=out_shape,
                macs=macs,
                folds_into=names.get(id(producer)) if producer is not None else None,
            )
        )
    units = tuple(
        UnitSpec(
            name=u.name,
            kind=u.kind,
            layers=tuple(u.layers),
            in_group=a.key(u.in_gid) if u.kind == "conv" else None,
            out_group=a.key(u.out_gid) if u.kind == "conv" else None,
        )
        for u in a.units.values()
    )
    order = {info.name: i for i, info in enumerate(a.layers.values())}
    groups = sorted(
        (
            GroupSpec(
                key=a.keys[root],
                channels=a.channels[root],
                shrinkable=root not in a.fixed,
                producers=tuple(p.name for p in a.producers(root)),
            )
            for root in a.channels
            if root == a.root(root)
        ),
        key=lambda g: order.get(g.key, -1),
    )
    spec = ArchSpec(
        input_shape=tuple(input_shape), layers=tuple(layers), units=units, groups=tuple(groups)
    )
    return _without_widening_units(spec)


def _without_widening_units(spec: ArchSpec) -> ArchSpec:
    """Drops the conv units whose removal would make the student larger.

    Removing a channel-reducing conv (a Fire squeeze, a 1×1 bottleneck, an SE reduction)
    feeds its wider input to its consumers, which then grow by more than the unit saved.
    Such a unit is not a compression decision, so the policy never sees it.
    """
    base = Genome()
    params, macs = spec.predict_params(base), spec.predict_macs(base)
    widening = {
        u.name
        for u in spec.units
        if u.kind == "conv"
        and (
            spec.predict_params(g := Genome(keep={u.name: False})) > params
            or spec.predict_macs(g) > macs
        )
    }
    if not widening:
        return spec
    return replace(
        spec,
        units=tuple(u for u in spec.units if u.name not in widening),
        layers=tuple(replace(la, unit=None) if la.unit in widening else la for la in spec.layers),
    )
