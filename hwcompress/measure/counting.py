"""The one set of counting rules behind every params / MACs / bytes figure the package shows.

The spec's predictions (:meth:`hwcompress.arch.ArchSpec.predict_params`), the PyTorch analysis
(:func:`hwcompress.measure.stats.analyze_module`) and the ONNX analysis
(:func:`hwcompress.measure.onnx_graph.analyze_onnx`) all count the model **as deployed**, with
the rules below, so every command reports the same numbers for the same model:

- **Batch-norm after a convolution or linear layer** (whose output only it reads) is folded into
  that layer, as every exporter and runtime does: no MACs, and its shift becomes the layer's bias
  (``C`` parameters if the layer had none, else 0). Its running statistics are never parameters.
- **Any other batch-norm** is a per-channel scale and shift: ``2·C`` parameters (the scale at the
  weight bit-width, the shift at 32 bits, as the quantizer makes it a depthwise 1×1 convolution)
  and one multiply-add per output element.
- **MACs** are the multiply-accumulates of weighted ops: convolution
  ``out_elements · in_channels/groups · kh · kw``; linear / matmul ``out_elements · in_features``;
  unfolded batch-norm ``out_elements``. Pooling, element-wise adds, activations, reshapes and
  concatenation do no multiply-accumulates and count 0 (the convention of torchvision's published
  figures and fvcore).
- **Weight bytes**: weights at their bit-widths, biases at 32 bits; sub-8-bit ONNX weights count
  the bits their ``Clip`` admits.

Peak activation memory is a liveness analysis over the execution order: a tensor is alive
from the step that produces it until its last consumer ran; the graph's outputs stay alive.
Reshape-like ops alias their input (no new buffer); element-wise activations and batch-norm
are counted as in place, because every deployment runtime fuses them into the producer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def numel(shape: Iterable[int]) -> int:
    """Number of elements of a tensor of ``shape``."""
    return math.prod(int(d) for d in shape)


def conv_macs(out_shape: Sequence[int], in_channels_per_group: int, kernel: Sequence[int]) -> int:
    """MACs of a convolution producing ``out_shape``."""
    return numel(out_shape) * in_channels_per_group * numel(kernel)


def linear_macs(out_shape: Sequence[int], in_features: int) -> int:
    """MACs of a fully connected layer / matmul producing ``out_shape``."""
    return numel(out_shape) * in_features


def norm_macs(out_shape: Sequence[int], *, folded: bool) -> int:
    """MACs of a batch-norm: none when folded into its producer, else one per element."""
    return 0 if folded else numel(out_shape)


def norm_params(channels: int, *, folded: bool, producer_has_bias: bool = False) -> int:
    """Parameters a batch-norm over ``channels`` adds to the deployed model.

    Args:
        channels: Its channels (features).
        folded: Whether it folds into the convolution / linear layer before it.
        producer_has_bias: Whether that layer already has a bias (then folding adds nothing).
    """
    if folded:
        return 0 if producer_has_bias else channels
    return 2 * channels


@dataclass(frozen=True)
class Step:
    """One op in execution order, for the liveness analysis.

    Attributes:
        name: The tensor the op produces.
        nbytes: Its size in bytes (ignored when the op aliases an input).
        inputs: Names of the tensors it reads.
        alias_of: Name of the input whose buffer it reuses, if any.
    """

    name: str
    nbytes: int
    inputs: tuple[str, ...] = ()
    alias_of: str | None = None


def peak_live_bytes(steps: Sequence[Step], outputs: Iterable[str]) -> int:
    """Peak of the bytes alive at once while running ``steps`` in order.

    Args:
        steps: The ops in execution order; the graph inputs are steps with no inputs.
        outputs: Tensors that stay alive until the end (the graph outputs).

    Returns:
        The peak number of live activation bytes.
    """
    root: dict[str, str] = {}
    size: dict[str, int] = {}
    last_use: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.alias_of is not None and step.alias_of in root:
            root[step.name] = root[step.alias_of]
        else:
            root[step.name] = step.name
            size[step.name] = step.nbytes
            last_use[step.name] = i
        for inp in step.inputs:
            if inp in root:
                r = root[inp]
                last_use[r] = max(last_use[r], i)
        if step.alias_of is not None and step.alias_of in root:
            last_use[root[step.name]] = max(last_use[root[step.name]], i)
    end = len(steps)
    for out in outputs:
        if out in root:
            last_use[root[out]] = end
    free_at: dict[int, list[str]] = defaultdict(list)
    for r, i in last_use.items():
        free_at[i].append(r)
    live = peak = 0
    for i, step in enumerate(steps):
        if root[step.name] == step.name:
            live += size[step.name]
        peak = max(peak, live)
        for r in free_at[i]:
            live -= size[r]
    return peak


def activation_traffic(steps: Sequence[Step]) -> int:
    """Bytes written then read once by every non-aliasing op: a roofline memory estimate."""
    return 2 * sum(s.nbytes for s in steps if s.alias_of is None)


def precision_for_bits(weight_bits: int) -> str:
    """The compute precision a layer with ``weight_bits`` runs in."""
    if weight_bits <= 4:
        return "int4"
    if weight_bits <= 8:
        return "int8"
    if weight_bits <= 16:
        return "fp16"
    return "fp32"
