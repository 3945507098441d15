"""ArchSpec: the decision points of a teacher, and what a student of it costs.

Plain frozen data (JSON round-trip); per-layer decisions are keyed by module name. One choice
at each point is a :class:`~hwcompress.arch.genome.Genome`; tracing a teacher into its spec
is :func:`~hwcompress.arch.analysis.build_spec`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hwcompress.arch.genome import Genome
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
