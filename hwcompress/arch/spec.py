"""ArchSpec: the decision points of a teacher, and Genome: one choice at each of them.

Both are plain frozen data (JSON round-trip). Per-layer decisions are keyed by module name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from torch import nn

from hwcompress.errors import GenomeError
from hwcompress.measure.counting import norm_params


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """One module with parameters, in execution order.

    Attributes:
        name: Qualified module name.
        kind: ``conv``, ``dwconv``, ``gconv``, ``linear``, ``norm`` or ``other``.
        in_channels: Input channels (features for linear layers).
        out_channels: Output channels (features).
        kernel: Kernel size (``(1,)`` for linear and norm layers).
        stride: First stride component (1 for non-conv layers).
        padding: First padding component.
        in_group: Key of the channel group the layer reads.
        out_group: Key of the channel group the layer writes.
        factor: For linear layers, inputs per input channel (the flattened spatial size).
        bias: Whether the layer has a bias.
        params: Parameter count in the teacher.
        unit: The removal unit containing this layer, if any.
        skip: True if the layer sits inside a residual branch.
        input_shape: Input tensor shape for a batch of one.
        output_shape: Output tensor shape for a batch of one.
        macs: For ``other`` layers (fixed size), their multiply-accumulates, e.g. a linear
            layer applied to every position of a channels-last tensor.
        folds_into: For ``norm`` layers, the conv / linear layer they fold into when deployed
            (:mod:`hwcompress.measure.counting`), if any.
    """

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...] = (1,)
    stride: int = 1
    padding: int = 0
    in_group: str
    out_group: str
    factor: int = 1
    bias: bool = False
    params: int = 0
    unit: str | None = None
    skip: bool = False
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    macs: int = 0
    folds_into: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnitSpec:
    """A removable unit: a residual branch or a conv (+ norm + activation)."""

    name: str
    kind: str
    layers: tuple[str, ...]
    in_group: str | None = None
    out_group: str | None = None


@dataclass(frozen=True, kw_only=True)
class GroupSpec:
    """A set of tensors whose channel counts must stay equal."""

    key: str
    channels: int
    shrinkable: bool
    producers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ArchSpec:
    """The decision points of one teacher for one input shape."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    units: tuple[UnitSpec, ...]
    groups: tuple[GroupSpec, ...]

    @property
    def removable(self) -> tuple[UnitSpec, ...]:
        """The units the removal stage decides on, in execution order."""
        return self.units

    @property
    def shrinkable(self) -> tuple[GroupSpec, ...]:
        """The channel groups the shrinkage stage decides on."""
        return tuple(g for g in self.groups if g.shrinkable)

    def layer(self, name: str) -> LayerSpec:
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        """Inverse of :meth:`to_dict`."""

        def tup(d: dict[str, Any], *keys: str) -> dict[str, Any]:
            return {k: tuple(v) if k in keys and v is not None else v for k, v in d.items()}

        return cls(
            input_shape=tuple(data["input_shape"]),
            layers=tuple(
                LayerSpec(**tup(x, "kernel", "input_shape", "output_shape")) for x in data["layers"]
            ),
            units=tuple(UnitSpec(**tup(x, "layers")) for x in data["units"]),
            groups=tuple(GroupSpec(**tup(x, "producers")) for x in data["groups"]),
        )

    def validate(self, genome: Genome) -> None:
        """Checks that ``genome`` only names this spec's decision points.

        Raises:
            GenomeError: On an unknown unit or group, or a width outside (0, 1].
        """
        units = {u.name for u in self.units}
        groups = {g.key for g in self.shrinkable}
        for name in genome.keep:
            if name not in units:
                raise GenomeError(
                    f"genome keeps/removes '{name}', which is not a removable "
                    f"unit; removable: {', '.join(sorted(units)) or 'none'}"
                )
        for key, width in genome.width.items():
            if key not in groups:
                raise GenomeError(
                    f"genome sets a width for '{key}', which is not a shrinkable "
                    f"channel group; shrinkable: {', '.join(sorted(groups))}"
                )
            if not 0 < width <= 1:
                raise GenomeError(f"width of '{key}' must be in (0, 1], got {width}")
        for name, size in genome.kernel.items():
            try:
                layer = self.layer(name)
            except KeyError:
                layer = None
            if layer is None or layer.kind not in ("conv", "dwconv", "gconv"):
                raise GenomeError(f"genome sets a kernel size for '{name}', which is not a conv")
            if len(size) != len(layer.kernel) or any(
                not 1 <= k <= t or (t - k) % 2 for k, t in zip(size, layer.kernel, strict=True)
            ):
                raise GenomeError(
                    f"kernel of '{name}' must be a centred crop of {tuple(layer.kernel)} "
                    f"(odd sizes no larger than the teacher's), got {tuple(size)}"
                )

    def channels_after(self, genome: Genome) -> dict[str, int]:
        """Channels of every group after shrinkage (removed groups keep their entry)."""
        return {
            g.key: max(1, round(genome.width.get(g.key, 1.0) * g.channels))
            if g.shrinkable
            else g.channels
            for g in self.groups
        }

    def predict_params(self, genome: Genome) -> int:
        """Parameter count of the student ``genome`` describes, computed from the spec alone.

        Counted as deployed, with the rules of :mod:`hwcompress.measure.counting` (batch-norms
        folded into the convolution before them), so it equals what ``analyze_module`` and
        ``analyze_onnx`` report for the built and exported student; tests check that, which
        checks the surgery independently.
        """
        return sum(c.weights + c.biases for c in self.costs(genome))

    def predict_macs(self, genome: Genome) -> int:
        """Multiply-accumulates of the student, from the spec (the rules of
        :mod:`hwcompress.measure.counting`: convolutions, linear layers, unfolded batch-norms).

        Removal keeps every stride-changing layer, so each kept layer's output resolution is
        the teacher's. Cheap enough to call at every step of a budgeted search.
        """
        return sum(c.macs for c in self.costs(genome))

    def predict_weight_bytes(self, genome: Genome, *, default_bits: int = 32) -> int:
        """Weight bytes of the student: weights at ``genome.weight_bits`` (``default_bits``
        for layers it does not name), biases at 32 bits, as ``analyze_module`` counts them."""
        bits = 0
        for c in self.costs(genome):
            width = genome.weight_bits.get(c.name, default_bits) if c.quantizable else 32
            bits += c.weights * width + c.biases * 32
        return math.ceil(bits / 8)

    def costs(self, genome: Genome) -> list[LayerCost]:
        """What each kept layer of the student ``genome`` describes costs, in execution order."""
        self.validate(genome)
        removed_units = [u for u in self.units if not genome.keep.get(u.name, True)]
        removed = {name for u in removed_units for name in u.layers}
        redirect = {
            u.out_group: u.in_group
            for u in removed_units
            if u.kind == "conv" and u.out_group and u.in_group
        }

        def resolve(key: str) -> str:
            seen = set()
            while key in redirect and key not in seen:
                seen.add(key)
                key = redirect[key]
            return key

        width = self.channels_after(genome)
        costs = []
        for layer in self.layers:
            if layer.name in removed:
                continue
            w_in = width[resolve(layer.in_group)]
            w_out = width[layer.out_group] if layer.kind != "dwconv" else w_in
            k = math.prod(genome.kernel.get(layer.name, layer.kernel))
            pixels = math.prod(layer.output_shape[2:]) if layer.kind != "linear" else 1
            bias = w_out if layer.bias else 0
            quantizable = True
            if layer.kind == "conv":
                weights, macs = w_in * w_out * k, w_in * w_out * k * pixels
            elif layer.kind == "dwconv":
                weights, macs = w_in * k, w_in * k * pixels
            elif layer.kind == "linear":
                weights = w_in * layer.factor * w_out
                macs = weights
            elif layer.kind == "gconv":  # grouped convs keep their channels
                bias = layer.out_channels if layer.bias else 0
                weights = (layer.params - bias) * k // math.prod(layer.kernel)
                macs = weights * pixels
            elif layer.kind == "norm":
                folded = layer.folds_into is not None
                producer_bias = folded and self.layer(str(layer.folds_into)).bias
                total = norm_params(w_in, folded=folded, producer_has_bias=producer_bias)
                # folded: only a bias is left; else a depthwise 1×1 conv (scale + shift)
                weights, bias = (0, total) if folded else (w_in, w_in)
                macs = 0 if folded else w_in * pixels
            else:
                weights, bias, macs, quantizable = 0, layer.params, layer.macs, False
            costs.append(
                LayerCost(
                    layer.name,
                    weights,
                    bias,
                    macs,
                    quantizable,
                    kind=layer.kind,
                    in_channels=w_in,
                    out_channels=w_out if layer.kind != "gconv" else layer.out_channels,
                    pixels=pixels,
                )
            )
        return costs


@dataclass(frozen=True)
class LayerCost:
    """What one layer of a student costs (:meth:`ArchSpec.costs`).

    Attributes:
        name: The layer's module name.
        weights: Parameters stored at the weight bit-width.
        biases: Parameters stored at 32 bits.
        macs: Its multiply-accumulates.
        quantizable: Whether its weights take the genome's bit-widths.
        kind: The layer's kind (:attr:`LayerSpec.kind`).
        in_channels: Channels it reads in the student.
        out_channels: Channels it writes in the student.
        pixels: Its output positions (1 for a linear layer).
    """

    name: str
    weights: int
    biases: int
    macs: int
    quantizable: bool = True
    kind: str = ""
    in_channels: int = 0
    out_channels: int = 0
    pixels: int = 1


@dataclass(frozen=True, kw_only=True)
class Genome:
    """One student: which units to keep, each group's width factor, kernel sizes and
    bit-widths.

    Missing entries mean "keep", width 1.0, the teacher's kernel and the default precision.
    ``kernel`` maps a conv's module name to the centred crop of its kernel that the student
    keeps (kernel-wise pruning), e.g. ``[3, 1]`` for a 3×3 kernel cut to 3×1.
    """

    keep: dict[str, bool] = field(default_factory=dict)
    width: dict[str, float] = field(default_factory=dict)
    kernel: dict[str, list[int]] = field(default_factory=dict)
    weight_bits: dict[str, int] = field(default_factory=dict)
    act_bits: dict[str, int] = field(default_factory=dict)

    def structure(self) -> Genome:
        """What this genome keeps and crops, with widths and bit-widths reset."""
        return Genome(keep=dict(self.keep), kernel=dict(self.kernel))

    def key(self) -> str:
        """A canonical string: equal genomes (after dropping defaults) have equal keys."""
        data = {
            "keep": {k: v for k, v in sorted(self.keep.items()) if not v},
            "width": {k: round(v, 6) for k, v in sorted(self.width.items()) if v != 1.0},
            "weight_bits": dict(sorted(self.weight_bits.items())),
            "act_bits": dict(sorted(self.act_bits.items())),
        }
        if self.kernel:
            data["kernel"] = {k: list(v) for k, v in sorted(self.kernel.items())}
        return json.dumps(data, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genome:
        """Inverse of :meth:`to_dict`."""
        fields = {k: dict(v) for k, v in data.items()}
        if "kernel" in fields:
            fields["kernel"] = {k: [int(x) for x in v] for k, v in fields["kernel"].items()}
        return cls(**fields)


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
