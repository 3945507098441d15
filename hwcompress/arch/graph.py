"""Channel-group analysis of a traced model: the ground truth for ArchSpec and surgery.

Every tensor in the torch.fx graph gets a *channel group*: the set of tensors whose channel
dimension must keep the same size. A convolution starts a new group; batch-norm, activations,
pooling and reshapes that keep the channel dimension (or flatten it channel-major for a linear
layer) pass their input's group on; a residual add (or a multiply) merges the groups of its
operands; a depthwise convolution keeps its input's group. Groups touching the model's input or
output, a concatenation, a split (``chunk``), a reshape that moves channels (a channel
shuffle's ``view → transpose → view``), a grouped convolution or an unknown op are fixed.

Removal units are found on the same graph (:mod:`hwcompress.arch.units`):

- a *residual unit* is the branch of an ``add`` whose other operand is the branch's own input
  (shape-preserving), e.g. a ResNet basic block without downsampling;
- a *conv unit* is a stride-1, same-padding convolution outside residual branches, with its
  trailing batch-norm and activation, whose output group has no other producer; removing it
  feeds its input to its consumers, whose input channels are adapted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.fx
from torch import nn

from hwcompress.arch.graph_types import (
    BINARY_FUNCTIONS,
    BINARY_METHODS,
    PASSTHROUGH_FUNCTIONS,
    PASSTHROUGH_METHODS,
    PASSTHROUGH_MODULES,
    GraphAnalysis,
    LayerInfo,
    UnionFind,
)
from hwcompress.arch.units import find_units
from hwcompress.fx import (
    NORM_MODULES,
    node_shape,
    propagate_shapes,
    trace,
)


def _conv_kind(m: nn.Conv2d | nn.Conv1d) -> str:
    if m.groups == 1:
        return "conv"
    if m.groups == m.in_channels == m.out_channels:
        return "dwconv"
    return "gconv"


def trace_model(model: nn.Module) -> torch.fx.GraphModule:
    """Traces a copy of ``model``: the GraphModule owns its submodules, the model is untouched."""
    return trace(model, copy_model=True)


def analyze_graph(gm: torch.fx.GraphModule, input_shape: Sequence[int]) -> GraphAnalysis:
    """Propagates shapes and channel groups through ``gm`` and finds removable units.

    Args:
        gm: A traced model (it is run once on zeros, in eval mode).
        input_shape: Shape of one input batch.

    Returns:
        Layers with their groups, group sizes and keys, fixed groups and removable units.

    Raises:
        ModelError: If the model does not run on an input of that shape.
    """
    propagate_shapes(gm, input_shape)
    uf = UnionFind()
    group: dict[torch.fx.Node, int] = {}
    fixed: list[int] = []
    channels: dict[int, int] = {}
    layers: dict[str, LayerInfo] = {}
    modules = dict(gm.named_modules())

    def new(node: torch.fx.Node) -> int:
        g = uf.new()
        shape = node_shape(node)
        channels[g] = shape[1] if shape and len(shape) > 1 else 1
        return g

    for node in gm.graph.nodes:
        shape = node_shape(node)
        tensor_inputs = [a for a in node.all_input_nodes if a in group]
        first = group[tensor_inputs[0]] if tensor_inputs else None
        if node.op == "placeholder":
            group[node] = new(node)
            fixed.append(group[node])
        elif node.op == "output":
            fixed.extend(group[a] for a in tensor_inputs)
        elif shape is None:
            if isinstance(node.meta.get("tensor_meta"), tuple | list):
                # chunk/split/unbind: the pieces get their own (fixed) groups from getitem.
                fixed.extend(group[a] for a in tensor_inputs)
            continue
        elif node.op == "call_module":
            m = modules[node.target]
            if isinstance(m, nn.Conv1d | nn.Conv2d) and first is not None:
                kind = _conv_kind(m)
                out = first if kind == "dwconv" else new(node)
                if kind == "gconv":
                    fixed.extend([first, out])
                layers[node.target] = LayerInfo(node.target, kind, m, node, first, out)
                group[node] = out
            elif isinstance(m, nn.Linear) and first is not None and len(shape) == 2:
                out = new(node)
                in_ch = channels[uf.find(first)]
                factor = m.in_features // in_ch if m.in_features % in_ch == 0 else 0
                if factor == 0:
                    fixed.append(first)
                layers[node.target] = LayerInfo(
                    node.target, "linear", m, node, first, out, max(factor, 1)
                )
                group[node] = out
            elif isinstance(m, PASSTHROUGH_MODULES) and first is not None:
                group[node] = first
                if isinstance(m, NORM_MODULES):
                    layers[node.target] = LayerInfo(node.target, "norm", m, node, first, first)
            else:
                group[node] = new(node)
                fixed.extend([group[node], *(group[a] for a in tensor_inputs)])
                if any(True for _ in m.parameters(recurse=False)):
                    layers[node.target] = LayerInfo(
                        node.target,
                        "other",
                        m,
                        node,
                        first if first is not None else group[node],
                        group[node],
                    )
        elif node.op in ("call_function", "call_method"):
            binary = (
                node.target in BINARY_FUNCTIONS
                if node.op == "call_function"
                else node.target in BINARY_METHODS
            )
            passthrough = (
                node.target in PASSTHROUGH_FUNCTIONS
                if node.op == "call_function"
                else node.target in PASSTHROUGH_METHODS
            )
            if binary and len(tensor_inputs) == 2:
                s0, s1 = (node_shape(a) for a in tensor_inputs)
                if s0 and s1 and len(s0) > 1 and len(s1) > 1 and s0[1] == s1[1]:
                    group[node] = uf.union(group[tensor_inputs[0]], group[tensor_inputs[1]])
                else:
                    group[node] = new(node)
                    fixed.extend([group[node], *(group[a] for a in tensor_inputs)])
            elif first is not None and (
                binary or (passthrough and _keeps_channels(tensor_inputs[0], node))
            ):
                group[node] = first
            else:
                group[node] = new(node)
                fixed.extend([group[node], *(group[a] for a in tensor_inputs)])
        else:  # get_attr and friends
            group[node] = new(node)
            fixed.append(group[node])
            owner, _, attr = str(node.target).rpartition(".")
            owner_module = gm.get_submodule(owner)
            if isinstance(getattr(owner_module, attr, None), nn.Parameter):
                # A parameter used directly (ConvNeXt's layer scale, LayerNorm2d's affine):
                # a fixed-size layer of its own, so that it is counted and removed with its unit.
                layers[str(node.target)] = LayerInfo(
                    str(node.target), "other", owner_module, node, group[node], group[node]
                )

    roots_fixed = {uf.find(g) for g in fixed}
    channels = {uf.find(g): c for g, c in channels.items()}
    keys: dict[int, str] = {}
    for info in layers.values():
        keys.setdefault(uf.find(info.out_gid), info.name)
    for g in list(channels):
        keys.setdefault(g, f"group{g}")
    analysis = GraphAnalysis(
        gm=gm,
        layers=layers,
        channels=channels,
        fixed=roots_fixed,
        keys=keys,
        units={},
        input_shape=tuple(input_shape),
        uf=uf,
    )
    analysis.units = find_units(analysis)
    return analysis


def _keeps_channels(src: torch.fx.Node, node: torch.fx.Node) -> bool:
    """True if ``node`` (a pass-through op on ``src``) keeps ``src``'s channels as its dim 1.

    A reshape may keep the channel dimension (``mean``, ``squeeze``, an identity ``view``) or
    flatten channel-major to ``(N, C·k)`` (a linear layer then reads ``k`` inputs per
    channel); anything else (a channel shuffle's 5-D ``view``) moves the channels.
    """
    a, b = node_shape(src), node_shape(node)
    if not a or not b or len(a) < 2 or len(b) < 2 or a[0] != b[0]:
        return False
    if a[1] == b[1]:
        return True
    return len(b) == 2 and b[1] == math.prod(a[1:])
