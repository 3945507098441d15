"""fp32 ONNX export through the TorchScript exporter.

The TorchScript path (``dynamo=False``) is used throughout hwcompress: it is the one that
Brevitas' QCDQ export also works with, so fp32 and quantized students follow the same route.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from hwcompress.errors import ModelError

DEFAULT_OPSET = 17


def export_fp32(
    model: nn.Module, input_shape: Sequence[int], path: str | Path, *, opset: int = DEFAULT_OPSET
) -> Path:
    """Exports ``model`` (in eval mode) to an fp32 ONNX file with a dynamic batch axis.

    Args:
        model: The model; it is copied, not modified.
        input_shape: Shape of one example input batch, e.g. ``(1, 1, 8, 8)``.
        path: Where to write the ``.onnx`` file (folders are created).
        opset: ONNX opset version.

    Returns:
        The written path.

    Raises:
        ModelError: If the exporter fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval()
    example = torch.zeros(tuple(input_shape))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                opset_version=opset,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"ONNX export of {type(model).__name__} failed: {first}") from err
    return path
