"""Cutting an ONNX model into *layers*, the unit the latency table measures.

A layer is one compute op (Conv, Gemm, MatMul, a pool, an add) with the light ops that follow
it alone (batch-norm, activation, pooling, flatten), which is also what onnxruntime fuses.
:func:`layers_of` cuts a model into layers with a canonical key each (equal keys, equal work);
:func:`layer_model` makes one layer a model of its own so that it can be timed alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hwcompress.errors import ModelError
from hwcompress.measure.onnx_graph import graph_info, value_shapes
from hwcompress.measure.onnx_ops import ALIAS_OPS, POOL_OPS

__all__ = ["LIGHT_OPS", "Layer", "empty_model", "layer_model", "layers_of"]

#: Ops that join the layer before them when they are its output's only consumer: those that
#: reuse their input's buffer, and pooling.
LIGHT_OPS = ALIAS_OPS | (POOL_OPS - {"LpPool"})


@dataclass(frozen=True)
class Layer:
    """One layer of an ONNX model: a run of nodes and what it reads and writes.

    Attributes:
        key: Canonical description (op types, attributes, shapes): equal keys, equal work.
        kind: The op sequence alone (for the fallback fit).
        macs: Multiply-accumulates of the layer.
        elements: Output elements of the layer.
        nodes: Indices of the nodes in the graph.
        inputs: Activation tensors read from outside the layer.
        output: The tensor the layer writes.
    """

    key: str
    kind: str
    macs: int
    elements: int
    nodes: tuple[int, ...]
    inputs: tuple[str, ...]
    output: str


def _attr_value(attr: Any) -> Any:
    import onnx

    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list | tuple):
        return [v.decode(errors="replace") if isinstance(v, bytes) else v for v in value]
    if isinstance(value, float | int | str):
        return value
    return str(type(value).__name__)


def layers_of(model: Any) -> tuple[Any, list[Layer]]:
    """Cuts an ONNX model into layers (see the module docstring).

    Args:
        model: An ``onnx.ModelProto``.

    Returns:
        The model with inferred shapes (batch 1) and its layers in execution order.

    Raises:
        ModelError: If a shape cannot be inferred.
    """
    from hwcompress.measure.counting import numel
    from hwcompress.measure.onnx_graph import ONNX_MACS

    model, shapes, inits = graph_info(model)
    graph = model.graph
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    consts = set(inits) | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    layers: list[Layer] = []
    current: list[int] = []

    def close() -> None:
        if not current:
            return
        parts, macs, inputs = [], 0, []
        produced: set[str] = set()
        for i in current:
            node = graph.node[i]
            ins = [shapes.get(n) for n in node.input]
            out = shapes.get(node.output[0]) if node.output else None
            if out is None and node.op_type != "Constant":
                raise ModelError(
                    f"cannot infer the shape of '{node.output[0]}' ({node.op_type}); "
                    "export with static input shapes"
                )
            rule = ONNX_MACS.get(node.op_type)
            if rule is not None and out is not None:
                macs += rule(node, ins, out, inits)
            attrs = {a.name: _attr_value(a) for a in sorted(node.attribute, key=lambda a: a.name)}
            parts.append([node.op_type, attrs, [list(s) if s is not None else None for s in ins]])
            for n in node.input:
                if n and n not in consts and n not in produced and n not in inputs:
                    inputs.append(n)
            produced.update(node.output)
        last = graph.node[current[-1]].output[0]
        layers.append(
            Layer(
                key=json.dumps(parts, sort_keys=True, separators=(",", ":")),
                kind="+".join(p[0] for p in parts),
                macs=int(macs),
                elements=int(numel(shapes.get(last, ()))),
                nodes=tuple(current),
                inputs=tuple(inputs),
                output=last,
            )
        )
        current.clear()

    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        act_in = [n for n in node.input if n and n not in consts]
        joins = (
            current
            and node.op_type in LIGHT_OPS
            and len(act_in) == 1
            and act_in[0] == graph.node[current[-1]].output[0]
            and consumers.get(act_in[0], 0) == 1
            and act_in[0] not in outputs
        )
        if not joins:
            close()
        current.append(i)
    close()
    return model, layers


def layer_model(model: Any, layer: Layer) -> Any:
    """A one-layer ONNX model computing ``layer`` of ``model`` (its weights included).

    Args:
        model: The model with inferred shapes, as :func:`layers_of` returns it.
        layer: One of its layers.
    """
    import onnx
    from onnx import helper

    graph = model.graph
    shapes = value_shapes(graph)
    nodes = [graph.node[i] for i in layer.nodes]
    used = {n for node in nodes for n in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    const_nodes = [n for n in graph.node if n.op_type == "Constant" and set(n.output) & used]
    elem = onnx.TensorProto.FLOAT
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*graph.input, *graph.value_info]}
    inputs = [
        helper.make_tensor_value_info(n, types.get(n, elem), list(shapes[n])) for n in layer.inputs
    ]
    out_type = {vi.name: vi.type.tensor_type.elem_type for vi in [*graph.value_info, *graph.output]}
    outputs = [
        helper.make_tensor_value_info(
            layer.output, out_type.get(layer.output, elem), list(shapes[layer.output])
        )
    ]
    g = helper.make_graph([*const_nodes, *nodes], "layer", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m


def empty_model(opset: Any, ir_version: int) -> Any:
    """The smallest model: one Identity on a single float (the fixed cost of a run)."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "empty", [x], [y])
    m = helper.make_model(g, opset_imports=list(opset))
    m.ir_version = ir_version
    return m
