"""The vocabulary of the channel-group analysis (:mod:`hwcompress.arch.graph`): which fx
modules, functions and methods pass channels through or combine two tensors, and the records
the analysis returns."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from hwcompress.fx import ACTIVATION_MODULES, NORM_MODULES

__all__ = [
    "ADD_FUNCTIONS",
    "BINARY_FUNCTIONS",
    "BINARY_METHODS",
    "PASSTHROUGH_FUNCTIONS",
    "PASSTHROUGH_METHODS",
    "PASSTHROUGH_MODULES",
    "GraphAnalysis",
    "LayerInfo",
    "UnionFind",
    "UnitInfo",
]

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


class UnionFind:
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
    uf: UnionFind = field(repr=False, default_factory=UnionFind)

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
