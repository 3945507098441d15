"""Channel-group analysis of a traced model: the ground truth for ArchSpec and surgery.

Every tensor in the torch.fx graph gets a *channel group*: the set of tensors whose channel
dimension must keep the same size. A convolution starts a new group; batch-norm, activations,
pooling and reshapes that keep the channel dimension (or flatten it channel-major for a linear
layer) pass their input's group on; a residual add (or a multiply) merges the groups of its
operands; a depthwise convolution keeps its input's group. Groups touching the model's input or
output, a concatenation, a split (``chunk``), a reshape that moves channels (a channel
shuffle's ``view → transpose → view``), a grouped convolution or an unknown op are fixed.

Removal units are found on the same graph:

- a *residual unit* is the branch of an ``add`` whose other operand is the branch's own input
  (shape-preserving), e.g. a ResNet basic block without downsampling;
- a *conv unit* is a stride-1, same-padding convolution outside residual branches, with its
  trailing batch-norm and activation, whose output group has no other producer; removing it
  feeds its input to its consumers, whose input channels are adapted.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from hwcompress.fx import (
    ACTIVATION_MODULES,
    NORM_MODULES,
    node_shape,
    propagate_shapes,
    trace,
)

PASSTHROUGH_MODULES = (
    *ACTIVATION_MODULES,
    *NORM_MODULES,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Identity,
    nn.Flatten,
)
BINARY_FUNCTIONS = frozenset(
    {operator.add, operator.iadd, torch.add, operator.mul, operator.imul, torch.mul}
)
ADD_FUNCTIONS = frozenset({operator.add, operator.iadd, torch.add})
PASSTHROUGH_FUNCTIONS = frozenset(
    {
        torch.flatten,
        F.relu,
        F.relu6,
        F.adaptive_avg_pool2d,
        F.dropout,
        F.hardswish,
        F.silu,
        torch.relu,
        torch.sigmoid,
        torch.squeeze,
        torch.reshape,
        F.gelu,
        torch.mean,
    }
)
BINARY_METHODS = frozenset({"add", "add_", "mul", "mul_"})
PASSTHROUGH_METHODS = frozenset(
    {"view", "reshape", "flatten", "relu", "relu_", "mean", "contiguous", "squeeze", "sigmoid"}
)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
        return min(ra, rb)


@dataclass
class LayerInfo:
    """A module with parameters and the channel groups it reads and writes."""

    name: str
    kind: str  # conv | dwconv | gconv | linear | norm | other
    module: nn.Module
    node: torch.fx.Node
    in_gid: int
    out_gid: int
    factor: int = 1  # linear layers: in_features per input channel (flattened spatial size)


@dataclass
class UnitInfo:
    """A removable unit of the graph."""

    name: str
    kind: str  # residual | conv
    nodes: list[torch.fx.Node]
    layers: list[str]
    in_gid: int = -1
    out_gid: int = -1
    replacement: torch.fx.Node | None = None  # what the unit's output is replaced by
    output: torch.fx.Node | None = None


@dataclass
class GraphAnalysis:
    """The result of :func:`analyze_graph`."""

    gm: torch.fx.GraphModule
    layers: dict[str, LayerInfo]
    channels: dict[int, int]  # group root -> channel count
    fixed: set[int]
    keys: dict[int, str]  # group root -> key (first producer's module name)
    units: dict[str, UnitInfo]
    input_shape: tuple[int, ...]
    uf: _UnionFind = field(repr=False, default_factory=_UnionFind)

    def root(self, gid: int) -> int:
        """The representative of ``gid``'s group."""
        return self.uf.find(gid)

    def key(self, gid: int) -> str:
        """The stable key of ``gid``'s group."""
        return self.keys[self.root(gid)]

    def shrinkable(self, gid: int) -> bool:
        """True if the group's width may change."""
        return self.root(gid) not in self.fixed

    def producers(self, gid: int) -> list[LayerInfo]:
        """Layers (conv/linear) that create the channels of ``gid``'s group."""
        r = self.root(gid)
        return [
            li
            for li in self.layers.values()
            if li.kind in ("conv", "linear") and self.root(li.out_gid) == r
        ]


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
    uf = _UnionFind()
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
    analysis.units = _find_units(analysis)
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


def _ancestor_masks(nodes: list[torch.fx.Node]) -> dict[torch.fx.Node, int]:
    """Each node's ancestors as a bit mask over ``nodes`` (in topological order)."""
    index = {n: i for i, n in enumerate(nodes)}
    masks: dict[torch.fx.Node, int] = {}
    for n in nodes:
        m = 0
        for i in n.all_input_nodes:
            m |= masks[i] | (1 << index[i])
        masks[n] = m
    return masks


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    prefix: list[str] = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        prefix.append(items[0])
    return ".".join(prefix)


def _find_units(a: GraphAnalysis) -> dict[str, UnitInfo]:
    units: dict[str, UnitInfo] = {}
    in_branch: set[torch.fx.Node] = set()
    nodes = list(a.gm.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    anc = _ancestor_masks(nodes)
    for node in nodes:
        is_add = (node.op == "call_function" and node.target in ADD_FUNCTIONS) or (
            node.op == "call_method" and node.target in ("add", "add_")
        )
        tensor_args = [x for x in node.args if isinstance(x, torch.fx.Node)]
        if not is_add or len(tensor_args) != 2:
            continue
        for skip, r in (tensor_args, tensor_args[::-1]):
            anc_r = anc[r] | (1 << index[r])
            bit = 1 << index[skip]
            if not anc_r & bit or node_shape(skip) != node_shape(r):
                continue
            branch = [n for n in nodes if anc_r >> index[n] & 1 and n is not skip and anc[n] & bit]
            members = set(branch)
            if any(u not in members and u is not node for n in branch for u in n.users):
                continue
            names = [n.target for n in branch if n.op == "call_module"]
            if not names:
                continue
            name = _common_prefix(names) or f"residual_{node.name}"
            # Parameters read only inside the branch (get_attr) go with it.
            members |= {
                n
                for m in branch
                for n in m.all_input_nodes
                if n.op == "get_attr" and all(u in members for u in n.users)
            }
            ordered = [n for n in nodes if n in members]
            layers = [n.target for n in ordered if n.target in a.layers]
            if name not in units:
                units[name] = UnitInfo(
                    name, "residual", [*ordered, node], layers, replacement=skip, output=node
                )
                in_branch |= members
            break
    modules = dict(a.gm.named_modules())
    for info in a.layers.values():
        if info.kind != "conv" or info.node in in_branch:
            continue
        unit = _conv_unit(a, info, modules)
        if unit is not None and unit.name not in units:
            units[unit.name] = unit
    return units


def _conv_unit(a: GraphAnalysis, info: LayerInfo, modules: dict[str, nn.Module]) -> UnitInfo | None:
    conv = info.module
    assert isinstance(conv, nn.Conv1d | nn.Conv2d)
    if any(s != 1 for s in conv.stride):
        return None
    if a.root(info.in_gid) in a.fixed and any(
        n.op == "placeholder" for n in [info.node.all_input_nodes[0]]
    ):
        return None  # keep the stem: it adapts the image channels
    out_root = a.root(info.out_gid)
    if out_root in a.fixed or len(a.producers(info.out_gid)) != 1:
        return None
    chain = [info.node]
    while len(chain[-1].users) == 1:
        nxt = next(iter(chain[-1].users))
        trailing = (*NORM_MODULES, *ACTIVATION_MODULES)
        if nxt.op == "call_module" and isinstance(modules[str(nxt.target)], trailing):
            chain.append(nxt)
        else:
            break
    src = info.node.all_input_nodes[0]
    if node_shape(src)[2:] != node_shape(chain[-1])[2:]:  # type: ignore[index]
        return None
    chain_names = {n.target for n in chain}
    for other in a.layers.values():
        if other.name in chain_names:
            continue
        if a.root(other.in_gid) == out_root and other.kind not in ("conv", "linear"):
            return None
    if a.root(info.in_gid) in a.fixed and not any(
        other.kind in ("conv", "linear")
        for other in a.layers.values()
        if a.root(other.in_gid) == out_root
    ):
        return None
    parent = info.name.rsplit(".", 1)[0] if "." in info.name else ""
    siblings = (
        {f"{parent}.{n}" if parent else n for n, _ in modules[parent].named_children()}
        if parent
        else set()
    )
    name = parent if parent and siblings == chain_names else info.name
    return UnitInfo(
        name,
        "conv",
        chain,
        [n.target for n in chain if n.target in a.layers],
        in_gid=info.in_gid,
        out_gid=info.out_gid,
        replacement=src,
        output=chain[-1],
    )
