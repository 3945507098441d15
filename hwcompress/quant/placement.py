"""Where activation quantizers go, so that onnxruntime runs the exported graph in integers.

onnxruntime turns a ``DequantizeLinear → op → QuantizeLinear`` group into one integer kernel
(``QLinearConv``, ``QGemm``, ``QLinearAdd``, ``QLinearConcat``, ``QLinearGlobalAveragePool``, …)
and runs ``MaxPool``/``Reshape``/``Flatten`` between matching quantizers on integers. The
placement below gives it exactly that shape, the way ``quantize_static`` lays out a QDQ model:

- **after every compute op** (convolution, linear, add, mul, concat, average pooling) one
  quantizer, placed *after* its activation when the op's only user is a ReLU/ReLU6 (an
  unsigned quantizer; onnxruntime then drops the activation and fuses Conv+ReLU), except where
  the value is the network's output (the logits stay float);
- **before a compute op** whose input is not already on a quantizer's grid (the network's input,
  the output of a Sigmoid or Hardswish, …) one quantizer, shared by all compute users of that
  tensor;
- **nothing** after *grid-preserving* ops (max pooling, ReLU, flatten, reshape, dropout, …): their
  output is already on their input's grid; the exported graph gets matching Q/DQ pairs around
  them (:func:`~hwcompress.quant.qdq.requantize_grid_ops`) so onnxruntime runs them in integers.

A batch-norm that no convolution precedes (DenseNet's norm after a concat) becomes the exact
depthwise 1×1 convolution it is, so it is quantized like any other convolution.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

__all__ = [
    "QuantPoint",
    "activation_ceiling",
    "batchnorms_to_convs",
    "place_activation_quantizers",
]

#: Activations folded into the quantizer after a compute op (their output is never negative,
#: so that quantizer is unsigned).
_CLAMPING_MODULES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
_CLAMPING_FUNCTIONS: set[Callable[..., object]] = {F.relu, torch.relu, F.relu6}
_CLAMPING_METHODS = {"relu", "relu_"}

#: Modules whose output lies on their input's quantization grid.
_GRID_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool2d,
    nn.MaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.ReLU,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)
_GRID_FUNCTIONS: set[Callable[..., object]] = {
    F.max_pool2d,
    F.adaptive_max_pool2d,
    F.relu,
    torch.relu,
    torch.flatten,
    F.dropout,
    torch.reshape,
    torch.transpose,
    torch.permute,
    torch.squeeze,
    torch.unsqueeze,
    torch.chunk,
    torch.split,
    operator.getitem,
}
_GRID_METHODS = {
    "view",
    "reshape",
    "flatten",
    "permute",
    "transpose",
    "contiguous",
    "squeeze",
    "unsqueeze",
    "chunk",
    "split",
    "relu",
    "relu_",
    "size",
}

#: Element-wise binary compute ops: compute ops only between two tensors (``x * 0.5`` is not).
_BINARY_FUNCTIONS: set[Callable[..., object]] = {
    operator.add,
    operator.iadd,
    torch.add,
    operator.mul,
    operator.imul,
    torch.mul,
}
_BINARY_METHODS = {"add", "add_", "mul", "mul_"}

#: Compute ops (besides quantized convolutions and linears) with integer kernels.
_COMPUTE_MODULES: tuple[type[nn.Module], ...] = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_COMPUTE_FUNCTIONS: set[Callable[..., object]] = _BINARY_FUNCTIONS | {
    torch.cat,
    torch.concat,
    F.avg_pool2d,
    F.adaptive_avg_pool2d,
}
_COMPUTE_METHODS = _BINARY_METHODS


@dataclass(frozen=True)
class QuantPoint:
    """One activation quantizer inserted into the graph.

    Attributes:
        name: Its module name in the quantized model.
        after: The graph node whose output it quantizes.
        signed: False for a quantizer after a ReLU-like activation (unsigned range).
        bits: Its bit-width.
    """

    name: str
    after: str
    signed: bool
    bits: int


def activation_ceiling(node: torch.fx.Node, gm: torch.fx.GraphModule) -> float | None:
    """The largest value a clamping activation lets through (6 for ReLU6), None if unbounded.

    An unsigned quantizer after such an activation must not represent more than this value:
    onnxruntime drops the ``Clip`` (and fuses the activation into the integer kernel) only when
    the quantizer's own range lies inside the clip's.
    """
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        if isinstance(m, nn.Hardtanh) and m.min_val >= 0:  # ReLU6 is Hardtanh(0, 6)
            return float(m.max_val)
    elif node.op == "call_function" and node.target is F.relu6:
        return 6.0
    return None


def batchnorms_to_convs(gm: torch.fx.GraphModule) -> int:
    """Replaces every ``BatchNorm2d`` left after conv fusion by its depthwise 1×1 convolution.

    In eval mode a batch-norm is ``y = a·x + b`` per channel, which a depthwise 1×1 convolution
    with weight ``a`` and bias ``b`` computes exactly.

    Returns:
        How many were replaced.
    """
    count = 0
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        bn = gm.get_submodule(node.target)
        if not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None or bn.running_mean is None:
            continue
        c = bn.num_features
        conv = nn.Conv2d(c, c, 1, groups=c, bias=True)
        with torch.no_grad():
            a = torch.rsqrt(bn.running_var + bn.eps)
            if bn.affine:
                a = a * bn.weight
            b = -bn.running_mean * a
            if bn.affine:
                b = b + bn.bias
            conv.weight.copy_(a.reshape(c, 1, 1, 1))
            conv.bias.copy_(b)  # type: ignore[union-attr]
        gm.set_submodule(node.target, conv)
        count += 1
    if count:
        gm.recompile()
    return count


def _is(
    node: torch.fx.Node,
    gm: torch.fx.GraphModule,
    kinds: tuple[type[nn.Module], ...],
    funcs: set[Callable[..., object]],
    methods: set[str],
) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(str(node.target)), kinds)
    if node.op == "call_function":
        return node.target in funcs
    if node.op == "call_method":
        return node.target in methods
    return False


def _tensor_inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
    args = [a for a in node.args if isinstance(a, torch.fx.Node)]
    for a in node.args:  # torch.cat([a, b])
        if isinstance(a, list | tuple):
            args.extend(x for x in a if isinstance(x, torch.fx.Node))
    return args


def place_activation_quantizers(
    gm: torch.fx.GraphModule,
    quantized: Mapping[str, int],
    make: Callable[[bool, int], nn.Module],
    default_bits: int = 8,
) -> list[QuantPoint]:
    """Inserts activation quantizers into ``gm`` (in place) by the rules of this module.

    Args:
        gm: A traced float model (batch-norms already folded or converted).
        quantized: Activation bit-width of each convolution/linear module that will be
            quantized, by module name; other convolutions stay float and are not compute ops.
        make: Builds a quantizer module from (signed, bits).
        default_bits: For quantizers not tied to one of ``quantized``.

    Returns:
        The quantizers inserted, in graph order.
    """

    def compute(node: torch.fx.Node) -> bool:
        if node.op == "call_module" and str(node.target) in quantized:
            return True
        if not _is(node, gm, _COMPUTE_MODULES, _COMPUTE_FUNCTIONS, _COMPUTE_METHODS):
            return False
        binary = node.target in _BINARY_FUNCTIONS or node.target in _BINARY_METHODS
        return len(_tensor_inputs(node)) >= (2 if binary else 1)

    def clamping(node: torch.fx.Node) -> bool:
        return _is(node, gm, _CLAMPING_MODULES, _CLAMPING_FUNCTIONS, _CLAMPING_METHODS)

    def grid(node: torch.fx.Node) -> bool:
        return _is(node, gm, _GRID_MODULES, _GRID_FUNCTIONS, _GRID_METHODS)

    def to_output(node: torch.fx.Node) -> bool:
        """Whether the value reaches the graph output only through grid-preserving ops."""
        users = list(node.users)
        return bool(users) and all(u.op == "output" or (grid(u) and to_output(u)) for u in users)

    points: list[QuantPoint] = []
    on_grid: set[torch.fx.Node] = set()

    def insert(after: torch.fx.Node, signed: bool, bits: int, users: list[torch.fx.Node]) -> None:
        name = f"act_quant_{len(points)}"
        gm.add_submodule(name, make(signed, bits))
        with gm.graph.inserting_after(after):
            q = gm.graph.call_module(name, (after,))
        for u in users:
            u.replace_input_with(after, q)
        on_grid.add(q)
        points.append(QuantPoint(name, after.name, signed, bits))

    for node in list(gm.graph.nodes):  # the quantizers inserted below are not visited
        if compute(node):
            # Inputs first: a compute op reads quantized values.
            for arg in _tensor_inputs(node):
                if arg not in on_grid:
                    users = [u for u in arg.users if compute(u)]
                    bits = quantized.get(str(node.target), default_bits)
                    insert(arg, True, bits, users)
            # Then the output, after its activation where that is its only user.
            target, signed = node, True
            if len(node.users) == 1 and clamping(next(iter(node.users))):
                target, signed = next(iter(node.users)), False
            if not to_output(target):
                bits = quantized.get(str(node.target), default_bits)
                insert(target, signed, bits, list(target.users))
        elif grid(node):
            ins = _tensor_inputs(node)
            if ins and ins[0] in on_grid:
                on_grid.add(node)
    gm.graph.lint()
    gm.recompile()
    return points
