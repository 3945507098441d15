"""Turning a (student) model into a Brevitas-quantized one, layer by layer by module name.

Batch-norm is folded into the preceding convolutions first (``torch.fx`` fusion), then every
``Conv2d`` / ``Linear`` becomes a ``QuantConv2d`` / ``QuantLinear`` with the chosen weight
bit-width, 8-bit (or chosen) quantized input and output and an int32 bias: the pattern that
onnxruntime fuses into integer kernels (``QLinearConv``, ``QGemm``). Layers given 16 or 32
bits stay in float.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.fx
from torch import nn

from hwcompress.errors import HwCompressError
from hwcompress.fx import trace

#: Weight bit-widths Brevitas quantizes to.
QUANT_BITS = (2, 3, 4, 5, 6, 7, 8)
#: Bit-widths that keep a layer in floating point.
FLOAT_BITS = (16, 32)


class QuantizationError(HwCompressError):
    """Bit-widths that the device cannot run, or a model that cannot be quantized."""


def check_bits(
    weight_bits: Mapping[str, int],
    act_bits: Mapping[str, int],
    supported_weight: Iterable[int],
    supported_act: Iterable[int],
) -> None:
    """Refuses bit-widths the device profile does not support.

    Raises:
        QuantizationError: Naming the layer, the bit-width and what the device supports.
    """
    sw, sa = set(supported_weight), set(supported_act)
    for kind, bits, supported in (("weight", weight_bits, sw), ("activation", act_bits, sa)):
        for name, b in bits.items():
            if b not in supported:
                raise QuantizationError(
                    f"{kind} bit-width {b} for '{name}' is not supported by the device; it "
                    f"supports {', '.join(map(str, sorted(supported)))}"
                )


def _act_quant(bits: int) -> dict[str, Any]:
    from brevitas.quant import Int8ActPerTensorFloat

    return {"quant": Int8ActPerTensorFloat, "bit_width": bits}


#: The widest weight range produced (see the comment in :func:`quantize_model`).
MAX_WEIGHT_RANGE_BITS = 7


def quantize_model(
    model: nn.Module,
    *,
    weight_bits: Mapping[str, int] | None = None,
    act_bits: Mapping[str, int] | None = None,
    default_weight_bits: int = 8,
    default_act_bits: int = 8,
) -> torch.fx.GraphModule:
    """Builds a Brevitas-quantized copy of ``model`` (in eval mode, not yet calibrated).

    Args:
        model: A float model (a student GraphModule or any traceable model).
        weight_bits: Weight bit-width per conv/linear module name.
        act_bits: Input/output activation bit-width per conv/linear module name.
        default_weight_bits: For layers absent from ``weight_bits``.
        default_act_bits: For layers absent from ``act_bits``.

    8-bit weights are stored in int8 with a 7-bit range (:data:`MAX_WEIGHT_RANGE_BITS`): x86
    CPUs sum pairs of u8×s8 products in 16 bits, which saturates with full-range weights.

    Returns:
        The quantized model; run :func:`calibrate` (or QAT) before using it.

    Raises:
        QuantizationError: On a bit-width Brevitas cannot produce.
    """
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Int32Bias
    from torch.fx.experimental.optimization import fuse

    weight_bits = dict(weight_bits or {})
    act_bits = dict(act_bits or {})
    was_training = model.training
    gm = fuse(trace(model.eval(), copy_model=True))
    model.train(was_training)
    for name, m in list(gm.named_modules()):
        if not isinstance(m, nn.Conv2d | nn.Linear):
            continue
        wb = weight_bits.get(name, default_weight_bits)
        ab = act_bits.get(name, default_act_bits)
        if wb in FLOAT_BITS and ab in (*QUANT_BITS, *FLOAT_BITS):
            continue
        if wb not in QUANT_BITS or ab not in QUANT_BITS:
            raise QuantizationError(
                f"'{name}': weight bits {wb} / activation bits {ab}: "
                f"choose from {QUANT_BITS} (or 16/32 to keep it in float)"
            )
        common = dict(
            bias=True,
            weight_quant=Int8WeightPerTensorFloat,
            # 8-bit weights keep a 7-bit range: x86 integer kernels (u8×s8 pairs summed in
            # 16 bits) saturate with full-range weights and the export stops agreeing with
            # PyTorch (onnxruntime's "reduce_range"; measured: 97.9 % → 100 % top-1 parity).
            weight_bit_width=min(wb, MAX_WEIGHT_RANGE_BITS),
            bias_quant=Int32Bias,
            input_quant=Int8ActPerTensorFloat,
            input_bit_width=ab,
            output_quant=Int8ActPerTensorFloat,
            output_bit_width=ab,
            return_quant_tensor=False,
        )
        if isinstance(m, nn.Conv2d):
            q = qnn.QuantConv2d(
                m.in_channels,
                m.out_channels,
                m.kernel_size,
                m.stride,
                m.padding,
                m.dilation,
                m.groups,
                **common,
            )
        else:
            q = qnn.QuantLinear(m.in_features, m.out_features, **common)
        with torch.no_grad():
            q.weight.copy_(m.weight)
            q.bias.copy_(m.bias if m.bias is not None else torch.zeros_like(q.bias))
        gm.set_submodule(name, q)
    gm.recompile()
    return gm.eval()


def quantized_layers(model: nn.Module) -> dict[str, int]:
    """Weight bit-width of every Brevitas layer, by module name."""
    import brevitas.nn as qnn

    return {
        name: int(m.weight_quant.bit_width())
        for name, m in model.named_modules()
        if isinstance(m, qnn.QuantConv2d | qnn.QuantLinear)
    }


@torch.no_grad()
def calibrate(
    model: nn.Module, batches: Iterable[Sequence[torch.Tensor]], max_batches: int = 8
) -> nn.Module:
    """Sets activation scales from data (Brevitas calibration mode), then eval mode."""
    from brevitas.graph.calibrate import calibration_mode

    model.eval()
    with calibration_mode(model):
        for i, batch in enumerate(batches):
            if i >= max_batches:
                break
            model(batch[0])
    return model.eval()
