"""torch.fx helpers shared by measurement and architecture analysis."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from hwcompress.errors import ModelError

#: Element-wise activation modules (passed through by channel analysis, in place for memory).
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.GELU,
    nn.Mish,
)
#: Normalisation modules that act per channel.
NORM_MODULES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d)
#: Layers a following batch-norm folds into.
WEIGHTED_MODULES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def trace(model: nn.Module, *, copy_model: bool = False) -> torch.fx.GraphModule:
    """Symbolically traces ``model`` with torch.fx.

    Args:
        model: The model.
        copy_model: Trace a deep copy, so the GraphModule owns its submodules and edits to it
            leave ``model`` untouched.

    Raises:
        ModelError: If the model cannot be traced (data-dependent control flow).
    """
    try:
        return torch.fx.symbolic_trace(copy.deepcopy(model) if copy_model else model)
    except Exception as err:  # torch.fx raises many error types
        raise ModelError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(err).__name__}: {err}). "
            "hwcompress needs models without data-dependent control flow in forward(); "
            "wrap such parts in a leaf module or simplify forward()"
        ) from err


def propagate_shapes(gm: torch.fx.GraphModule, input_shape: Sequence[int]) -> None:
    """Runs ``gm`` once on zeros in eval mode, recording each node's ``tensor_meta``.

    Raises:
        ModelError: If the model does not run on an input of that shape.
    """
    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(tuple(input_shape)))
    except Exception as err:
        raise ModelError(
            f"the model fails on an input of shape {tuple(input_shape)}: {err}"
        ) from err
    finally:
        gm.train(was_training)


def node_shape(node: torch.fx.Node) -> tuple[int, ...] | None:
    """The tensor shape recorded for ``node``, or None if it is not a tensor."""
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    return tuple(int(d) for d in meta.shape)


def folds_into(node: torch.fx.Node, modules: dict[str, nn.Module]) -> nn.Module | None:
    """The convolution / linear layer the batch-norm at ``node`` folds into, if any: the
    module that produced its only input, when nothing else reads that output."""
    if len(node.all_input_nodes) != 1:
        return None
    producer = node.all_input_nodes[0]
    if producer.op != "call_module" or len(producer.users) != 1:
        return None
    module = modules.get(str(producer.target))
    return module if isinstance(module, WEIGHTED_MODULES) else None
