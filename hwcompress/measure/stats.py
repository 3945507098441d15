"""Static metrics of a PyTorch model: parameters, MACs, weight bytes, peak activation memory.

The model is traced with torch.fx and its shapes propagated with a zero input, so the counts
follow the real data flow (residual adds included) rather than the module list.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from hwcompress.fx import (
    ACTIVATION_MODULES,
    NORM_MODULES,
    folds_into,
    node_shape,
    propagate_shapes,
    trace,
)
from hwcompress.measure.counting import (
    Step,
    activation_traffic,
    conv_macs,
    linear_macs,
    norm_macs,
    norm_params,
    numel,
    peak_live_bytes,
    precision_for_bits,
)

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile


@dataclass(frozen=True)
class LayerStats:
    """Per-module figures, keyed by the module's qualified name."""

    name: str
    kind: str
    params: int
    macs: int
    weight_bits: int
    weight_bytes: int
    output_shape: tuple[int, ...]
    quantizable: bool = False


@dataclass(frozen=True)
class ModelStats:
    """Static metrics of one model for one input shape."""

    params: int
    macs: int
    weight_bytes: int
    peak_activation_bytes: int
    activation_traffic_bytes: int
    input_shape: tuple[int, ...]
    layers: tuple[LayerStats, ...] = field(default=())
    weight_bit_widths: tuple[int, ...] = ()
    activation_bit_widths: tuple[int, ...] = ()

    @property
    def precision(self) -> str:
        """The precision the model computes in: that of its widest weights (``fp32`` for a
        float model, ``int8`` for an 8-bit one); the roofline and ``bench`` both use it."""
        return precision_for_bits(max(self.weight_bit_widths, default=32))

    def metrics(self, profile: DeviceProfile | None = None) -> dict[str, float]:
        """The metrics the constraint matrix reads.

        Args:
            profile: The device; with it, ``unsupported_bits`` (layers at bit-widths its
                kernels cannot run) is included.
        """
        metrics: dict[str, float] = {
            "params": self.params,
            "macs": self.macs,
            "weight_bytes": self.weight_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
        }
        if profile is not None:
            metrics["unsupported_bits"] = profile.bits.unsupported(
                self.weight_bit_widths, self.activation_bit_widths
            )
        return metrics


def _conv(m: nn.Module, ins: Sequence[tuple[int, ...]], out: tuple[int, ...]) -> int:
    assert isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)
    return conv_macs(out, m.in_channels // m.groups, m.kernel_size)


def _linear(m: nn.Module, ins: Sequence[tuple[int, ...]], out: tuple[int, ...]) -> int:
    assert isinstance(m, nn.Linear)
    return linear_macs(out, m.in_features)


def _matmul(m: Any, ins: Sequence[tuple[int, ...]], out: tuple[int, ...]) -> int:
    return linear_macs(out, ins[0][-1]) if ins and ins[0] else 0


ModuleRule = Callable[[Any, Sequence[tuple[int, ...]], tuple[int, ...]], int]

#: MAC rule per module type (looked up along the MRO, so subclasses inherit their rule); the
#: batch-norms' rule depends on their producer (see :mod:`hwcompress.measure.counting`).
MODULE_MACS: dict[type, ModuleRule] = {
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.Conv3d: _conv,
    nn.Linear: _linear,
}

#: MAC rule per function / method called in the traced graph.
FUNCTION_MACS: dict[Any, ModuleRule] = {torch.matmul: _matmul, operator.matmul: _matmul}
METHOD_MACS: dict[str, ModuleRule] = {"matmul": _matmul}

#: Ops whose output reuses an input buffer (reshapes, fused activations, folded batch-norm).
ALIAS_MODULES: tuple[type, ...] = (
    nn.Identity,
    nn.Flatten,
    nn.Dropout,
    *ACTIVATION_MODULES,
    *NORM_MODULES,
)
ALIAS_FUNCTIONS: frozenset[Any] = frozenset(
    {
        torch.flatten,
        torch.reshape,
        torch.squeeze,
        torch.unsqueeze,
        F.relu,
        F.relu6,
        F.dropout,
        F.hardswish,
        F.silu,
        torch.relu,
        torch.sigmoid,
        F.gelu,
    }
)
ALIAS_METHODS = frozenset(
    {"view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "relu", "relu_", "sigmoid"}
)


def _lookup(table: Mapping[type, ModuleRule], module: nn.Module) -> ModuleRule | None:
    for cls in type(module).__mro__:
        if cls in table:
            return table[cls]
    return None


def analyze_module(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    weight_bits: Mapping[str, int] | None = None,
    default_weight_bits: int = 32,
    activation_bits: int = 32,
) -> ModelStats:
    """Measures parameters, MACs, weight bytes and peak activation memory of ``model``.

    The model is counted as deployed (:mod:`hwcompress.measure.counting`): a batch-norm after a
    convolution is folded into it, so the figures equal those of the exported ONNX file.

    Args:
        model: The model; it is traced, not modified. A ``torch.fx.GraphModule`` (a built
            student) is read as it is, without a second trace; only its nodes' shape
            metadata is written.
        input_shape: Shape of one input batch, e.g. ``(1, 1, 8, 8)``.
        weight_bits: Bit-width of the ``weight`` parameter per module name; others use
            ``default_weight_bits``. Biases are counted at 32 bits.
        default_weight_bits: Bit-width for modules absent from ``weight_bits``.
        activation_bits: Bit-width of every activation tensor.

    Returns:
        The model's static metrics, with one :class:`LayerStats` per module that holds
        parameters or does arithmetic.

    Raises:
        ModelError: If the model cannot be traced or run on a zero input of that shape.
    """
    weight_bits = dict(weight_bits or {})
    gm = model if isinstance(model, torch.fx.GraphModule) else trace(model)
    propagate_shapes(gm, input_shape)
    modules = dict(gm.named_modules())
    act_bytes = activation_bits / 8
    steps: list[Step] = []
    outputs: list[str] = []
    layers: list[LayerStats] = []
    total_macs = 0
    for node in gm.graph.nodes:
        if node.op == "output":
            outputs.extend(a.name for a in node.all_input_nodes)
            continue
        out = node_shape(node)
        inputs = tuple(a.name for a in node.all_input_nodes)
        in_shapes = [s for s in (node_shape(a) for a in node.all_input_nodes) if s is not None]
        macs = 0
        alias = False
        if node.op == "call_module":
            module = modules[node.target]
            alias = isinstance(module, ALIAS_MODULES)
            if isinstance(module, NORM_MODULES):
                layer = _norm_stats(node, module, modules, out, weight_bits, default_weight_bits)
            else:
                rule = _lookup(MODULE_MACS, module)
                macs = rule(module, in_shapes, out) if rule and out is not None else 0
                layer = _layer_stats(
                    node.target, module, macs, out, weight_bits, default_weight_bits
                )
            macs = layer.macs
            if list(module.parameters(recurse=False)) or layer.params or macs:
                layers.append(layer)
        elif node.op == "call_function":
            rule = FUNCTION_MACS.get(node.target)
            macs = rule(None, in_shapes, out) if rule and out is not None else 0
            alias = node.target in ALIAS_FUNCTIONS
        elif node.op == "call_method":
            rule = METHOD_MACS.get(node.target)
            macs = rule(None, in_shapes, out) if rule and out is not None else 0
            alias = node.target in ALIAS_METHODS
        total_macs += macs
        if out is None:
            continue
        first_input = node.all_input_nodes[0].name if node.all_input_nodes else None
        steps.append(
            Step(
                node.name, math.ceil(numel(out) * act_bytes), inputs, first_input if alias else None
            )
        )
    covered = {layer.name for layer in layers}
    extra = [  # parameters of modules the graph never called (rare) at 32 bits
        p.numel()
        for name, m in model.named_modules()
        if name not in covered and not isinstance(m, NORM_MODULES)
        for p in m.parameters(recurse=False)
    ]
    weighted = [la for la in layers if la.quantizable]
    return ModelStats(
        params=sum(layer.params for layer in layers) + sum(extra),
        macs=total_macs,
        weight_bytes=sum(layer.weight_bytes for layer in layers) + 4 * sum(extra),
        peak_activation_bytes=peak_live_bytes(steps, outputs),
        activation_traffic_bytes=activation_traffic(steps),
        input_shape=tuple(int(d) for d in input_shape),
        layers=tuple(layers),
        weight_bit_widths=tuple(la.weight_bits for la in weighted),
        activation_bit_widths=(activation_bits,) * len(weighted),
    )


def _norm_stats(
    node: torch.fx.Node,
    module: nn.Module,
    modules: dict[str, nn.Module],
    out: tuple[int, ...] | None,
    weight_bits: Mapping[str, int],
    default_bits: int,
) -> LayerStats:
    channels = int(getattr(module, "num_features", 0))
    producer = folds_into(node, modules)
    folded = producer is not None
    params = norm_params(
        channels, folded=folded, producer_has_bias=getattr(producer, "bias", None) is not None
    )
    # folded: the shift becomes a 32-bit bias; else a depthwise 1×1 conv (scale at the weight
    # bits, shift at 32)
    bits = 32 if folded else weight_bits.get(str(node.target), default_bits)
    total_bits = params * 32 if folded else channels * (bits + 32)
    return LayerStats(
        name=str(node.target),
        kind=type(module).__name__,
        params=params,
        macs=norm_macs(out, folded=folded) if out is not None else 0,
        weight_bits=bits,
        weight_bytes=math.ceil(total_bits / 8),
        output_shape=out or (),
        quantizable=not folded,
    )


def _layer_stats(
    name: str,
    module: nn.Module,
    macs: int,
    out: tuple[int, ...] | None,
    weight_bits: Mapping[str, int],
    default_bits: int,
) -> LayerStats:
    quantizable = isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
    bits = weight_bits.get(name, default_bits) if quantizable else 32
    total_bits = 0
    params = 0
    for pname, p in module.named_parameters(recurse=False):
        params += p.numel()
        total_bits += p.numel() * (bits if pname == "weight" else 32)
    return LayerStats(
        name=name,
        kind=type(module).__name__,
        params=params,
        macs=macs,
        weight_bits=bits,
        weight_bytes=math.ceil(total_bits / 8),
        output_shape=out or (),
        quantizable=quantizable,
    )
