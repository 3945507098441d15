"""Static metrics of an ONNX file, for models that exist only as ONNX (``hwcompress bench``).

The same counting rules as :mod:`hwcompress.measure.stats` are applied to the ONNX graph after
shape inference. Batch-norm is usually folded into the convolutions by the exporter, so an
exported model may count fewer MACs and parameters than its PyTorch source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwcompress.errors import ModelError
from hwcompress.measure.counting import (
    Step,
    activation_traffic,
    conv_macs,
    linear_macs,
    norm_macs,
    numel,
    peak_live_bytes,
)
from hwcompress.measure.onnx_ops import (
    ALIAS_OPS,
    BIAS_INPUT,
    PASS_THROUGH,
    QPARAM_INPUTS,
    WEIGHT_INPUT,
)
from hwcompress.measure.stats import ModelStats

Shape = tuple[int, ...]
OnnxRule = Callable[[Any, Sequence[Shape | None], Shape, dict[str, Any]], int]


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _conv_rule(weight_index: int) -> OnnxRule:
    def rule(node: Any, ins: Sequence[Shape | None], out: Shape, init: dict[str, Any]) -> int:
        w = ins[weight_index]
        if w is None:
            return 0
        return conv_macs(out, w[1], w[2:])

    return rule


def _gemm(node: Any, ins: Sequence[Shape | None], out: Shape, init: dict[str, Any]) -> int:
    a = ins[0]
    if a is None:
        return 0
    k = a[0] if _attr(node, "transA", 0) else a[-1]
    return linear_macs(out, k)


def _matmul(node: Any, ins: Sequence[Shape | None], out: Shape, init: dict[str, Any]) -> int:
    a = ins[0]
    return linear_macs(out, a[-1]) if a else 0


#: MAC rule per ONNX op type (batch-norm: see :func:`_folded_norms`).
ONNX_MACS: dict[str, OnnxRule] = {
    "Conv": _conv_rule(1),
    "ConvInteger": _conv_rule(1),
    "QLinearConv": _conv_rule(3),
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "QLinearMatMul": _matmul,
}


def _folded_norms(graph: Any, producer: dict[str, Any]) -> dict[str, bool]:
    """Batch-norms that fold into the op before them, each with whether that op has a bias.

    A ``BatchNormalization`` folds when its input is a convolution / Gemm / MatMul output
    that nothing else reads (the rule of :mod:`hwcompress.measure.counting`).
    """
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    outputs = {o.name for o in graph.output}
    folded: dict[str, bool] = {}
    for n in graph.node:
        if n.op_type != "BatchNormalization":
            continue
        src = producer.get(n.input[0])
        if src is None or src.op_type not in BIAS_INPUT:
            continue
        if readers.get(n.input[0], 0) != 1 or n.input[0] in outputs:
            continue
        index = BIAS_INPUT[src.op_type]
        folded[n.output[0]] = 0 <= index < len(src.input) and bool(src.input[index])
    return folded


def load_onnx(path: str | Path) -> Any:
    """Loads an ONNX model and runs the checker, with clear errors.

    Raises:
        ModelError: If the file is missing or is not a valid ONNX model.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file; pass the path to an exported .onnx model")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as err:
        raise ModelError(
            f"{path}: not a valid ONNX model ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); export it with "
            "torch.onnx.export or 'hwcompress export'"
        ) from None
    return model


def graph_info(model: Any) -> tuple[Any, dict[str, tuple[int, ...]], dict[str, Any]]:
    """Graph with the batch fixed to 1 and shapes inferred; shapes and initializers."""
    from onnx import numpy_helper

    model = _fixed_batch(model)
    graph = model.graph
    shapes = value_shapes(graph)
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for name, arr in inits.items():
        shapes[name] = tuple(arr.shape)
    return model, shapes, inits


def value_shapes(graph: Any) -> dict[str, tuple[int, ...]]:
    """The static shapes of a graph's inputs, intermediate values and outputs."""
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
    return shapes


def _fixed_batch(model: Any) -> Any:
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    init_names = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        for dim in inp.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    return onnx.shape_inference.infer_shapes(model)


def clipped_bits(graph: Any, inits: dict[str, Any]) -> dict[str, int]:
    """True bit-widths of integer initializers that a ``Clip`` narrows (QCDQ sub-8-bit weights).

    Brevitas stores a 4-bit weight in an int8 tensor followed by ``Clip(-7, 7)``; the number
    of levels the clip admits gives the bits the weight really needs.

    Returns:
        Bits per initializer name, for those clipped by constant bounds.
    """
    bits: dict[str, int] = {}
    for node in graph.node:
        if node.op_type != "Clip" or len(node.input) < 3:
            continue
        src, lo, hi = node.input[0], node.input[1], node.input[2]
        if src not in inits or lo not in inits or hi not in inits:
            continue
        if inits[src].dtype.kind not in "iu":
            continue
        levels = int(inits[hi].max()) - int(inits[lo].min()) + 1
        if levels >= 2:
            b = min(max(1, math.ceil(math.log2(levels))), 8 * inits[src].dtype.itemsize)
            # a 7-bit range is how 8-bit weights are exported (x86 saturation, see
            # hwcompress.quant.convert.default_weight_range_bits): they are 8-bit weights
            bits[src] = 8 if b == 7 else b
    return bits


def _constant_tensors(graph: Any, inits: dict[str, Any]) -> set[str]:
    """Initializers and every tensor computed from initializers only (weight Q/DQ/Clip)."""
    const = set(inits)
    for node in graph.node:
        if node.op_type == "Constant" or all(i in const for i in node.input if i):
            const.update(node.output)
    return const


def _fused_into_quantizers(graph: Any, const: set[str], itemsize: dict[str, int]) -> dict[str, int]:
    """Outputs an integer kernel writes straight in the quantizer's type: a float op's result
    that only ``QuantizeLinear`` reads (through a ReLU/Clip at most) is fused with it (Conv +
    ReLU + Quantize is one QLinearConv; Add + Quantize one QLinearAdd), so the float tensor
    never exists and the kernel's output buffer is the quantizer's.

    Returns:
        Bytes per element of the quantized tensor, per fused output.
    """
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def quantizers(name: str, depth: int = 0) -> list[Any] | None:
        users = consumers.get(name, [])
        if not users or name in outputs:
            return None
        found: list[Any] = []
        for u in users:
            if u.op_type == "QuantizeLinear":
                found.append(u)
            elif depth == 0 and u.op_type in ("Relu", "Clip"):
                if (more := quantizers(u.output[0], 1)) is None:
                    return None
                found.extend(more)
            else:
                return None
        return found

    fused: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not node.output:
            continue
        o = node.output[0]
        if o in const:
            continue
        qs = quantizers(o, 1 if node.op_type in ("Relu", "Clip") else 0)
        if qs:
            fused[o] = max(itemsize.get(q.output[0], 1) for q in qs)
    return fused


def _bit_widths(
    graph: Any,
    producer: dict[str, Any],
    inits: dict[str, Any],
    const: set[str],
    clipped: dict[str, int],
    itemsize: dict[str, int],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The weight and input-activation bit-width of every weighted op, in graph order.

    A weight is traced back through dequantizers and clips to its initializer (its clipped
    bits, or its type's); an activation that a dequantizer produces is as wide as the integer
    tensor it dequantizes, any other as wide as its own type.
    """

    def width(name: str, *, weight: bool) -> int:
        for _ in range(8):
            if weight and name in inits:
                arr = inits[name]
                return clipped.get(name, 8 * arr.dtype.itemsize)
            node = producer.get(name)
            if node is None:
                break
            if node.op_type == "DequantizeLinear":
                src = node.input[0]
                if weight:
                    name = src
                    continue
                return 8 * itemsize.get(src, 1)
            if node.op_type not in PASS_THROUGH:
                break
            name = node.input[0]
        return 8 * itemsize.get(name, 4)

    weights: list[int] = []
    acts: list[int] = []
    for node in graph.node:
        index = WEIGHT_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index or node.input[index] not in const:
            continue  # not a weighted op (a matmul of two activations)
        weights.append(width(node.input[index], weight=True))
        acts.append(width(node.input[0], weight=False))
    return tuple(weights), tuple(acts)


def analyze_onnx(path: str | Path) -> ModelStats:
    """Measures parameters, MACs, weight bytes and peak activation memory of an ONNX file.

    Dynamic dimensions (the batch) are taken as 1. Integer weights clipped to a narrower range
    (QCDQ sub-8-bit weights) count their true bits (:func:`clipped_bits`). In a quantized
    (QDQ) graph activation memory is counted as integer kernels use it: dequantized tensors and
    float results that go straight into a quantizer are not stored, and weights computed from
    initializers are weights, not activations.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The model's static metrics (no per-layer breakdown).

    Raises:
        ModelError: If the file cannot be loaded or its shapes cannot be inferred.
    """
    import onnx
    from onnx import numpy_helper

    model = _fixed_batch(load_onnx(path))
    graph = model.graph
    shapes: dict[str, Shape] = {}
    itemsize: dict[str, int] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
            itemsize[vi.name] = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for name, arr in inits.items():
        shapes[name] = tuple(arr.shape)
    qparam = {
        inp
        for node in graph.node
        for i, inp in enumerate(node.input)
        if (node.op_type, i) in QPARAM_INPUTS
    }
    producer = {o: n for n in graph.node for o in n.output}
    folded = _folded_norms(graph, producer)
    for node in graph.node:  # running statistics, and what folding absorbs, are not weights
        if node.op_type == "BatchNormalization":
            qparam.update(node.input[3:5])
            if node.output[0] in folded:
                qparam.add(node.input[1])
                if folded[node.output[0]]:
                    qparam.add(node.input[2])
    bits = clipped_bits(graph, inits)
    params = 0
    weight_bits = 0
    for name, arr in inits.items():
        if name in qparam or arr.dtype.kind not in "fiu" or arr.dtype.itemsize == 8:
            continue
        params += arr.size
        weight_bits += arr.size * bits.get(name, 8 * arr.dtype.itemsize)
    weight_bytes = math.ceil(weight_bits / 8)
    steps: list[Step] = [
        Step(inp.name, math.ceil(numel(shapes.get(inp.name, ())) * itemsize.get(inp.name, 4)))
        for inp in graph.input
        if inp.name not in inits
    ]
    total_macs = 0
    const = _constant_tensors(graph, inits)
    fused = _fused_into_quantizers(graph, const, itemsize)
    for node in graph.node:
        ins = [shapes.get(i) for i in node.input]
        out_name = node.output[0] if node.output else ""
        out = shapes.get(out_name)
        rule = ONNX_MACS.get(node.op_type)
        if rule is not None and out is not None:
            total_macs += rule(node, ins, out, inits)
        elif node.op_type == "BatchNormalization" and out is not None:
            total_macs += norm_macs(out, folded=out_name in folded)
        if out is None:
            if node.op_type not in ("Constant", "Shape"):
                raise ModelError(
                    f"{path}: cannot infer the shape of '{out_name}' "
                    f"({node.op_type}); export with static input shapes"
                )
            continue
        if out_name in const:  # weights computed from initializers (Q/DQ of weights)
            continue
        act_inputs = tuple(i for i in node.input if i and i not in const)
        # A quantizer writes its own (narrower) integer tensor, unless the op before it was
        # fused with it (then that op wrote the integer tensor); a dequantizer is folded into
        # the integer kernel that reads it.
        if node.op_type == "QuantizeLinear":
            aliased = bool(act_inputs) and act_inputs[0] in fused
        else:
            aliased = node.op_type in ALIAS_OPS
        alias = act_inputs[0] if aliased and act_inputs else None
        size = fused.get(out_name, itemsize.get(out_name, 4))
        steps.append(Step(out_name, math.ceil(numel(out) * size), act_inputs, alias))
    input_shape = next((shapes[i.name] for i in graph.input if i.name not in inits), ())
    weight_widths, act_widths = _bit_widths(graph, producer, inits, const, bits, itemsize)
    return ModelStats(
        params=params,
        macs=total_macs,
        weight_bytes=weight_bytes,
        peak_activation_bytes=peak_live_bytes(steps, [o.name for o in graph.output]),
        activation_traffic_bytes=activation_traffic(steps),
        input_shape=input_shape,
        weight_bit_widths=weight_widths,
        activation_bit_widths=act_widths,
    )
