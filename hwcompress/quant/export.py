"""Deployable quantized ONNX (QCDQ) and the checks that it really is one.

The export goes through Brevitas' TorchScript path (``dynamo=False``): the dynamo path refuses
quantized bias. After export the model must load in onnxruntime with no initializer listed
as a graph input, run integer kernels in onnxruntime's optimised graph, and agree with the
PyTorch model on the validation set (:func:`parity`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwcompress.errors import ModelError
from hwcompress.quant.convert import QuantizationError
from hwcompress.quant.qdq import (
    activations_to_uint8,
    drop_unused_initializers,
    quantize_biases,
    requantize_grid_ops,
    strip_initializer_inputs,
)

#: Below this top-1 agreement between PyTorch and onnxruntime the export is refused.
MIN_AGREEMENT = 0.99


def export_qcdq(
    model: nn.Module, input_shape: Sequence[int], path: str | Path, *, opset: int = 17
) -> Path:
    """Exports a Brevitas-quantized model as QCDQ ONNX with a dynamic batch axis.

    Activation quantizers are rewritten to uint8 (:func:`~hwcompress.quant.qdq.
    activations_to_uint8`, the same values) so that onnxruntime fuses branching networks too.

    Raises:
        ModelError: If the export fails or lists initializers as graph inputs.
    """
    import onnx
    from brevitas.export import export_onnx_qcdq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            export_onnx_qcdq(
                model.eval(),
                torch.zeros(tuple(input_shape)),
                export_path=str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"QCDQ export failed: {first}") from err
    proto = onnx.load(str(path))
    strip_initializer_inputs(proto)
    activations_to_uint8(proto)
    requantize_grid_ops(proto)
    quantize_biases(proto)
    drop_unused_initializers(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


#: Near-tie tolerance of :func:`parity`, as a share of a sample's logit range.
TIE_TOLERANCE = 0.02


def _session(onnx_path: str | Path, optimize: bool = True) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def onnx_accuracy(onnx_path: str | Path, batches: Iterable[Sequence[torch.Tensor]]) -> float:
    """Top-1 accuracy of an ONNX classifier in onnxruntime (CPU, all optimisations)."""
    session = _session(onnx_path)
    name = session.get_inputs()[0].name
    correct = total = 0
    for batch in batches:
        got = session.run(None, {name: batch[0].numpy().astype(np.float32)})[0].argmax(axis=1)
        correct += int((got == batch[1].numpy()).sum())
        total += len(got)
    return correct / max(total, 1)


def optimisation_agreement(
    onnx_path: str | Path, batches: Iterable[Sequence[torch.Tensor]]
) -> float:
    """Top-1 agreement of onnxruntime with optimisations off (the Q/DQ reference, float ops
    between quantizers) and on (fused integer kernels)."""
    ref, fused = _session(onnx_path, optimize=False), _session(onnx_path)
    name = ref.get_inputs()[0].name
    agree = total = 0
    for batch in batches:
        feed = {name: batch[0].numpy().astype(np.float32)}
        a = ref.run(None, feed)[0].argmax(axis=1)
        b = fused.run(None, feed)[0].argmax(axis=1)
        agree += int((a == b).sum())
        total += len(a)
    return agree / max(total, 1)


def parity(
    model: nn.Module, onnx_path: str | Path, batches: Iterable[Sequence[torch.Tensor]]
) -> float:
    """Top-1 agreement between ``model`` (PyTorch) and onnxruntime over ``batches``.

    A sample whose PyTorch logits nearly tie (onnxruntime's pick within
    :data:`TIE_TOLERANCE` of the logit range below PyTorch's top logit) counts as agreeing:
    one rounding step of integer arithmetic may flip a near-tie, which says nothing about
    the export's faithfulness (a poorly trained low-bit student has many).
    """
    session = _session(onnx_path)
    name = session.get_inputs()[0].name
    agree = total = 0
    model.eval()
    with torch.no_grad():
        for batch in batches:
            x = batch[0]
            logits = model(x).numpy()
            got = session.run(None, {name: x.numpy().astype(np.float32)})[0].argmax(axis=1)
            top = logits.max(axis=1)
            span = top - logits.min(axis=1)
            picked = logits[np.arange(len(got)), got]
            agree += int((picked >= top - TIE_TOLERANCE * span).sum())
            total += len(got)
    return agree / max(total, 1)


def check_parity(
    model: nn.Module, onnx_path: str | Path, batches: Iterable[Sequence[torch.Tensor]]
) -> float:
    """:func:`parity`, refusing an export below :data:`MIN_AGREEMENT`.

    Raises:
        QuantizationError: If PyTorch and onnxruntime agree on fewer than 99% of samples.
    """
    agreement = parity(model, onnx_path, batches)
    if agreement < MIN_AGREEMENT:
        raise QuantizationError(
            f"{onnx_path}: onnxruntime agrees with the PyTorch quantized model on only "
            f"{agreement:.2%} of validation samples (need ≥ {MIN_AGREEMENT:.0%}); the export "
            "is not faithful"
        )
    return agreement


def export_checked(
    model: nn.Module,
    input_shape: tuple[int, ...],
    onnx_path: str | Path,
    batches: Iterable[Sequence[torch.Tensor]] | None,
) -> tuple[float | None, float | None]:
    """QCDQ export of a quantized model (atomically) → parity check against PyTorch →
    the integer model's own accuracy in onnxruntime, on ``batches`` (validation data).

    Returns:
        The top-1 agreement and the onnxruntime accuracy; both ``None`` without ``batches``.

    Raises:
        QuantizationError: If PyTorch and onnxruntime disagree (:func:`check_parity`).
    """
    from hwcompress.files import atomic_path

    path = Path(onnx_path)
    with atomic_path(path) as tmp:
        export_qcdq(model, input_shape, tmp)
    if batches is None:
        return None, None
    return check_parity(model, path, batches), onnx_accuracy(path, batches)
