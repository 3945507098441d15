"""Rewrites of exported QCDQ graphs so that onnxruntime fuses every layer into integer kernels.

Brevitas quantizes activations as signed int8 with zero point 0. On x86, onnxruntime first
converts such ``QuantizeLinear → DequantizeLinear`` pairs to uint8 (its integer convolutions
want unsigned activations), but that conversion only handles a ``QuantizeLinear`` with a single
consumer. When one tensor feeds two quantized layers with the same scale (a ResNet block's
first convolution and its downsample shortcut), onnxruntime's common-subexpression pass merges
their two ``QuantizeLinear`` nodes, the conversion skips the merged node, and both
convolutions stay in float. :func:`activations_to_uint8` does the conversion in the file
itself: ``Q(x; s, 0, int8)`` and ``Q(x; s, 128, uint8)`` carry the same values shifted by 128,
so the rewritten model computes exactly what the original does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "activations_to_uint8",
    "drop_unused_initializers",
    "quantize_biases",
    "requantize_grid_ops",
    "strip_initializer_inputs",
]


def _consumers(graph: Any) -> dict[str, list[Any]]:
    """The nodes reading each tensor of ``graph``."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def activations_to_uint8(model: Any) -> int:
    """Turns int8 activation quantization into the equivalent uint8 one, in place.

    Each ``QuantizeLinear`` with an int8 zero point, whose consumers are ``DequantizeLinear``
    nodes (optionally behind a ``Clip`` with constant bounds, as sub-8-bit activations are
    exported), gets a uint8 zero point shifted by 128; its dequantizers and clip bounds follow.
    Quantized weights (int8 initializers) are left as they are.

    Args:
        model: An ``onnx.ModelProto``.

    Returns:
        How many quantizers were rewritten.
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers = _consumers(graph)

    def const(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def int8_zero_point(node: Any) -> bool:
        zp = const(node.input[2]) if len(node.input) > 2 else None
        return zp is not None and zp.dtype == np.int8

    def known(name: str) -> np.ndarray:
        arr = const(name)
        assert arr is not None, name  # checked by the callers (int8 zero points, clip bounds)
        return arr

    def add_uint8(name: str, shifted: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(shifted.astype(np.uint8), name))
        inits[name] = graph.initializer[-1]
        return name

    converted = 0
    quantizers = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    for k, q in enumerate(quantizers):
        if not int8_zero_point(q):
            continue
        dqs: list[Any] = []
        clips: list[Any] = []
        ok = True
        for c in consumers.get(q.output[0], []):
            if c.op_type == "DequantizeLinear":
                dqs.append(c)
            elif c.op_type == "Clip" and all(const(b) is not None for b in c.input[1:3]):
                clips.append(c)
                after = consumers.get(c.output[0], [])
                ok &= all(d.op_type == "DequantizeLinear" for d in after)
                dqs.extend(after)
            else:
                ok = False
        if not ok or not all(int8_zero_point(d) for d in dqs):
            continue
        zp = add_uint8(f"hwc_u8_zero_point_{k}", known(q.input[2]).astype(np.int16) + 128)
        q.input[2] = zp
        for d in dqs:
            d.input[2] = zp
        for j, c in enumerate(clips):
            c.input[1] = add_uint8(f"hwc_u8_min_{k}_{j}", known(c.input[1]).astype(np.int16) + 128)
            c.input[2] = add_uint8(f"hwc_u8_max_{k}_{j}", known(c.input[2]).astype(np.int16) + 128)
        converted += 1
    return converted


def strip_initializer_inputs(model: Any) -> int:
    """Removes initializers from the graph's inputs, in place.

    Brevitas exports with ``keep_initializers_as_inputs``; a weight that is also a graph input
    may be overridden at run time, so onnxruntime neither folds nor fuses it.

    Returns:
        How many inputs were removed.
    """
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    keep = [i for i in graph.input if i.name not in inits]
    removed = len(graph.input) - len(keep)
    if removed:
        del graph.input[:]
        graph.input.extend(keep)
    return removed


#: Ops whose output lies on their input's quantization grid (values moved, never computed).
GRID_OPS = frozenset(
    {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Relu", "Identity"}
)


def requantize_grid_ops(model: Any) -> int:
    """Puts a ``QuantizeLinear → DequantizeLinear`` pair with its input's parameters after
    every grid-preserving op (:data:`GRID_OPS`) that reads a dequantized tensor, in place.

    ``DequantizeLinear → MaxPool → Conv`` becomes ``DequantizeLinear → MaxPool →
    QuantizeLinear → DequantizeLinear → Conv``: the same values (a max, a reshape or a ReLU of
    grid points is a grid point), in the form onnxruntime runs in integers (the pair around the
    op is dropped and the op runs on uint8) and fuses the next layer with.

    Returns:
        How many pairs were inserted.
    """
    from onnx import helper

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    inits = {t.name: t for t in graph.initializer}

    def per_tensor_dq(name: str) -> Any:
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
            return None
        scale = inits.get(dq.input[1])
        if scale is None or len(scale.dims) != 0 or dq.input[2] not in inits:
            return None
        return dq

    added = 0
    new_nodes: list[Any] = []
    for node in list(graph.node):
        new_nodes.append(node)
        if node.op_type not in GRID_OPS or not node.input or len(node.output) != 1:
            continue
        dq = per_tensor_dq(node.input[0])
        out = node.output[0]
        users = consumers.get(out, [])
        if dq is None or out in outputs or not users:
            continue
        if all(
            u.op_type == "QuantizeLinear" and list(u.input[1:3]) == list(dq.input[1:3])
            for u in users
        ):
            continue
        q_out, dq_out = f"{out}_hwc_q", f"{out}_hwc_dq"
        q = helper.make_node(
            "QuantizeLinear",
            [out, dq.input[1], dq.input[2]],
            [q_out],
            name=f"{node.name or out}_hwc_q",
        )
        d = helper.make_node(
            "DequantizeLinear",
            [q_out, dq.input[1], dq.input[2]],
            [dq_out],
            name=f"{node.name or out}_hwc_dq",
        )
        for u in users:
            for i, name in enumerate(u.input):
                if name == out:
                    u.input[i] = dq_out
        new_nodes.extend([q, d])
        producer[q_out], producer[dq_out] = q, d
        consumers[dq_out] = users
        consumers[out] = [q]
        added += 1
    if added:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return added


def quantize_biases(model: Any) -> int:
    """Stores each float bias of an integer-ready ``Conv``/``Gemm`` as int32, in place.

    A ``Conv``/``Gemm`` whose input and weight come from ``DequantizeLinear`` computes its sum in
    int32 on the scale ``s_x·s_w`` (per output channel with per-channel weights); a bias on that
    scale (``round(b / (s_x·s_w))``, dequantized) is what integer kernels add, and what lets
    onnxruntime fuse a ``Gemm`` with float output into ``QGemm``. The rounding moves a bias by
    at most half an accumulator step. The float biases are left unread
    (:func:`drop_unused_initializers` removes them).

    Returns:
        How many biases were quantized.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def scale_of(name: str) -> np.ndarray | None:
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in inits:
            return None
        return numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)

    def int32_bias(node: Any) -> Any:
        """The ``DequantizeLinear`` of ``node``'s bias as int32, or None where it cannot be."""
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            return None
        if node.input[2] not in inits:
            return None
        bias = numpy_helper.to_array(inits[node.input[2]])
        sx, sw = scale_of(node.input[0]), scale_of(node.input[1])
        if bias.dtype != np.float32 or sx is None or sw is None or sx.size != 1:
            return None
        if sw.size not in (1, bias.size):
            return None
        scale = (sx.reshape(()) * sw).astype(np.float32)
        if scale.size == 1 and bias.size > 1:
            scale = scale.reshape(())
        if not np.all(scale > 0):
            return None
        q = np.clip(np.round(bias.astype(np.float64) / scale), -(2**31), 2**31 - 1)
        base = f"{node.input[2]}_hwc_int32"
        graph.initializer.extend(
            [
                numpy_helper.from_array(q.astype(np.int32), base),
                numpy_helper.from_array(scale, base + "_scale"),
                numpy_helper.from_array(np.zeros_like(scale, np.int32), base + "_zp"),
            ]
        )
        dq = helper.make_node(
            "DequantizeLinear",
            [base, base + "_scale", base + "_zp"],
            [base + "_dq"],
            name=base + "_dq",
        )
        if scale.ndim == 1:
            dq.attribute.append(helper.make_attribute("axis", 0))
        return dq

    done = 0
    new_nodes: list[Any] = []
    for node in graph.node:
        dq = int32_bias(node)
        if dq is not None:
            new_nodes.append(dq)
            node.input[2] = dq.output[0]
            done += 1
        new_nodes.append(node)
    if done:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return done


def drop_unused_initializers(model: Any) -> int:
    """Removes initializers no node reads, in place; returns how many."""
    graph = model.graph
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    removed = len(graph.initializer) - len(keep)
    if removed:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed
