"""Removal units of a traced model: residual branches and same-shape convolutions.

- a *residual unit* is the branch of an ``add`` whose other operand is the branch's own input
  (shape-preserving), e.g. a ResNet basic block without downsampling;
- a *conv unit* is a stride-1, same-padding convolution outside residual branches, with its
  trailing batch-norm and activation, whose output group has no other producer; removing it
  feeds its input to its consumers, whose input channels are adapted.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from hwcompress.arch.graph_types import ADD_FUNCTIONS, GraphAnalysis, LayerInfo, UnitInfo
from hwcompress.fx import ACTIVATION_MODULES, NORM_MODULES, node_shape

__all__ = ["find_units"]


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


def find_units(a: GraphAnalysis) -> dict[str, UnitInfo]:
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
