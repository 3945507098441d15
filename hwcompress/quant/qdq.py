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

__all__ = ["activations_to_uint8"]


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
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def const(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def int8_zero_point(node: Any) -> bool:
        zp = const(node.input[2]) if len(node.input) > 2 else None
        return zp is not None and zp.dtype == np.int8

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
        zp = add_uint8(f"hwc_u8_zero_point_{k}", const(q.input[2]).astype(np.int16) + 128)
        q.input[2] = zp
        for d in dqs:
            d.input[2] = zp
        for j, c in enumerate(clips):
            c.input[1] = add_uint8(f"hwc_u8_min_{k}_{j}", const(c.input[1]).astype(np.int16) + 128)
            c.input[2] = add_uint8(f"hwc_u8_max_{k}_{j}", const(c.input[2]).astype(np.int16) + 128)
        converted += 1
    return converted
