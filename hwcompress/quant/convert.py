"""Turning a (student) model into a Brevitas-quantized one, layer by layer by module name.

Batch-norm is folded into the preceding convolutions first (``torch.fx`` fusion), then every
``Conv2d`` / ``Linear`` becomes a ``QuantConv2d`` / ``QuantLinear`` with the chosen weight
bit-width (per-channel scales), and activation quantizers go where onnxruntime's integer kernels
want them (:mod:`hwcompress.quant.placement`). Layers given 16 or 32 bits stay in float.
"""

from __future__ import annotations

import functools
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


@functools.cache
def default_weight_range_bits() -> int:
    """The widest range 8-bit weights get on this machine: 8, or 7 on an x86 CPU without VNNI.

    x86 CPUs without VNNI multiply u8 activations by s8 weights with ``vpmaddubsw``, which sums
    pairs of products in 16 bits and saturates with full-range weights (onnxruntime's
    ``reduce_range``); with VNNI (``vpdpbusd``, 32-bit sums), on ARM (``sdot``/``udot``) and on
    MCUs the full range is exact and more accurate (MobileNetV2 at 64×64: 83.85 % vs 83.25 %
    test with 7 bits). Where the CPU flags cannot be read, an x86 host gets 7.
    """
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return 8
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return 7
    return 8 if {"avx512_vnni", "avx_vnni"} & set(flags) else 7


def _act_quantizer(signed: bool, bits: int) -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat

    quant = Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat
    return qnn.QuantIdentity(act_quant=quant, bit_width=bits, return_quant_tensor=False)


def quantize_model(
    model: nn.Module,
    *,
    weight_bits: Mapping[str, int] | None = None,
    act_bits: Mapping[str, int] | None = None,
    default_weight_bits: int = 8,
    default_act_bits: int = 8,
    weight_range_bits: int | None = None,
) -> torch.fx.GraphModule:
    """Builds a Brevitas-quantized copy of ``model`` (in eval mode, not yet calibrated).

    Batch-norms are folded into their convolutions (those no convolution precedes become
    depthwise 1×1 convolutions), every ``Conv2d``/``Linear`` becomes a ``QuantConv2d``/
    ``QuantLinear`` with per-output-channel weight scales, and activation quantizers are placed
    where onnxruntime's integer kernels want them (:mod:`hwcompress.quant.placement`): after
    each compute op's ReLU, before each compute op whose input is float, never around max
    pooling or reshapes. Biases stay float here; the export stores them as int32 on the
    product of the input and weight scales, as integer kernels need.

    Args:
        model: A float model (a student GraphModule or any traceable model).
        weight_bits: Weight bit-width per conv/linear module name.
        act_bits: Bit-width of the activation quantizer after each conv/linear (by module
            name), and of the one before it where its input needs one.
        default_weight_bits: For layers absent from ``weight_bits``.
        default_act_bits: For layers absent from ``act_bits`` and for other quantizers.
        weight_range_bits: The widest weight range (8, or 7 for x86 CPUs without VNNI); by
            default :func:`default_weight_range_bits` of this machine.

    Returns:
        The quantized model; run :func:`calibrate` (or QAT) before using it.

    Raises:
        QuantizationError: On a bit-width Brevitas cannot produce.
    """
    import brevitas.nn as qnn
    from brevitas.quant import Int8WeightPerChannelFloat
    from torch.fx.experimental.optimization import fuse

    from hwcompress.quant.placement import batchnorms_to_convs, place_activation_quantizers

    weight_bits = dict(weight_bits or {})
    act_bits = dict(act_bits or {})
    widest = weight_range_bits or default_weight_range_bits()
    if widest not in (7, 8):
        raise QuantizationError(f"weight_range_bits must be 7 or 8, got {widest}")
    was_training = model.training
    gm: torch.fx.GraphModule = fuse(trace(model.eval(), copy_model=True))  # type: ignore[assignment]
    model.train(was_training)
    batchnorms_to_convs(gm)
    quantized: dict[str, int] = {}
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
        quantized[name] = ab
        common = dict(
            bias=True,
            weight_quant=Int8WeightPerChannelFloat,
            # see default_weight_range_bits: 7 on x86 CPUs whose integer kernels saturate
            weight_bit_width=min(wb, widest),
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
                padding_mode=m.padding_mode,
                **common,
            )
        else:
            q = qnn.QuantLinear(m.in_features, m.out_features, **common)
        with torch.no_grad():
            q.weight.copy_(m.weight)
            q.bias.copy_(m.bias if m.bias is not None else torch.zeros_like(q.bias))
        gm.set_submodule(name, q)
    place_activation_quantizers(gm, quantized, _act_quantizer, default_act_bits)
    gm.eval()
    return gm


def quantized_layers(model: nn.Module) -> dict[str, int]:
    """Weight bit-width of every Brevitas layer, by module name."""
    import brevitas.nn as qnn

    return {
        name: int(m.weight_quant.bit_width())
        for name, m in model.named_modules()
        if isinstance(m, qnn.QuantConv2d | qnn.QuantLinear)
    }


@torch.no_grad()
def clamp_to_activation_ceilings(model: nn.Module) -> int:
    """Keeps each quantizer after a bounded activation (ReLU6) inside the activation's range.

    A learned (QAT) range can grow past 6 after a ReLU6; onnxruntime then keeps the ``Clip`` as
    a float op between integer kernels instead of fusing it. Lowering such a range to the
    ceiling only makes its grid finer: every value the activation lets through stays
    representable.

    Args:
        model: A model from :func:`quantize_model` (calibrated or trained).

    Returns:
        How many quantizer ranges were lowered.
    """
    from hwcompress.quant.placement import activation_ceiling

    if not isinstance(model, torch.fx.GraphModule):
        return 0
    lowered = 0
    for node in model.graph.nodes:
        if node.op != "call_module" or not node.args or not isinstance(node.args[0], torch.fx.Node):
            continue
        ceiling = activation_ceiling(node.args[0], model)
        quantizer = model.get_submodule(str(node.target))
        if ceiling is None or not hasattr(quantizer, "act_quant"):
            continue
        proxy: Any = quantizer.act_quant  # Brevitas internals
        scaling = proxy.fused_activation_quant_proxy.tensor_quant.scaling_impl
        value = getattr(scaling, "value", None)
        if isinstance(value, torch.Tensor) and float(value.abs().max()) > ceiling:
            value.clamp_(-ceiling, ceiling)
            lowered += 1
    return lowered


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
    clamp_to_activation_ceilings(model)
    return model.eval()


def post_training_quantize(
    model: nn.Module,
    batches: Iterable[Sequence[torch.Tensor]],
    *,
    weight_bits: Mapping[str, int] | None = None,
    act_bits: int = 8,
) -> nn.Module:
    """A float ``model``'s quantized copy (:func:`quantize_model`), calibrated on ``batches``:
    the integer model a float student ships as, and the start of quantization-aware training.

    Args:
        model: The float model (left unchanged).
        batches: Calibration batches (inputs first), in a fixed order.
        weight_bits: Per-layer weight bits; 8 for the layers it omits.
        act_bits: The activation bits.
    """
    q = quantize_model(model, weight_bits=weight_bits, default_act_bits=act_bits)
    return calibrate(q, batches)
