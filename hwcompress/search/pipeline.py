"""The steps a student goes through, shared by the search, the product's final distillation
and export: rebuild it from its genome, train it, count it as it will ship, export and
measure it.

A candidate's evaluation (:meth:`~hwcompress.search.evaluate.CandidateEvaluator.prepare`)
and its promotion to the next fidelity (``refine``) run the same steps, a float student and
a quantized one alike: :func:`train_step` (distillation, or quantization-aware training by
distillation), :func:`export_step` (fp32 ONNX, or QCDQ with its parity check and its own
accuracy in onnxruntime), :func:`count_step` and :func:`measure_candidate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwcompress.arch import ArchSpec, Genome, build_student
from hwcompress.export import export_fp32
from hwcompress.files import atomic_path
from hwcompress.hardware import DeviceProfile
from hwcompress.hardware.sections import SourceName
from hwcompress.measure.result import LatencyResult
from hwcompress.measure.sources import measure_latency
from hwcompress.measure.stats import analyze_module

#: Rounds of in-turn timing of a candidate with the teacher (5 inferences each per round).
REFERENCE_ROUNDS = 20

__all__ = [
    "count_step",
    "export_step",
    "float_counting",
    "measure_candidate",
    "measure_model",
    "rebuild_candidate",
    "structure_of",
    "train_step",
]


def structure_of(genome: Genome) -> Genome:
    """The genome without bit-widths: what :func:`build_student` builds."""
    return Genome(keep=dict(genome.keep), width=dict(genome.width), kernel=dict(genome.kernel))


def rebuild_candidate(
    teacher: nn.Module,
    genome: Genome,
    input_shape: tuple[int, ...],
    state_dict: dict[str, torch.Tensor],
    *,
    spec: ArchSpec | None = None,
    act_bits: int = 8,
    weight_range_bits: int | None = None,
) -> nn.Module:
    """Rebuilds an evaluated candidate (float or quantized) from its genome and weights.

    ``weight_range_bits`` is the range its 8-bit weights were trained with (the checkpoint's
    meta records it; by default this machine's).
    """
    from hwcompress.quant.convert import quantize_model

    student = build_student(teacher, structure_of(genome), input_shape, spec=spec)
    model: nn.Module = student
    if genome.weight_bits:
        model = quantize_model(
            student,
            weight_bits=genome.weight_bits,
            default_act_bits=act_bits,
            weight_range_bits=weight_range_bits,
        )
    model.load_state_dict(state_dict)
    return model.eval()


def float_counting(profile: DeviceProfile) -> tuple[int, int]:
    """The weight and activation bits a float model of a run on ``profile`` is counted at:
    fp32 where the device runs fp32, else the integer model it will ship as (the profile's
    widest integer widths; a run on such a device must quantize, and its product is a
    quantized student)."""
    if profile.bits.runs_float:
        return 32, 32
    # the widest integer width; a device without one (fp16 only) ships its narrowest width
    return (
        max((b for b in profile.bits.weight if b <= 8), default=min(profile.bits.weight)),
        max((b for b in profile.bits.activation if b <= 8), default=min(profile.bits.activation)),
    )


def train_step(
    model: nn.Module,
    genome: Genome,
    teacher: nn.Module,
    data: Any,
    config: Any,
    teacher_logits: Any = None,
) -> float:
    """Trains a student from the teacher: distillation for a float one, quantization-aware
    training by distillation for a quantized one (``genome.weight_bits``).

    Args:
        model: The student (a quantized model where the genome has bit-widths).
        genome: Its genome.
        teacher: The teacher.
        data: The run's data (train and validation loaders).
        config: The :class:`~hwcompress.train.DistillConfig` (epochs, patience, seed…).
        teacher_logits: The teacher's cached logits on the training split.

    Returns:
        The student's validation accuracy (PyTorch; fake-quantized for a quantized one).
    """
    if genome.weight_bits:
        from hwcompress.quant.qat import quantization_aware_training

        return float(
            quantization_aware_training(model, teacher, data, config, teacher_logits=teacher_logits)
        )
    from hwcompress.train import distill

    return float(distill(model, teacher, data, config, teacher_logits=teacher_logits).val_accuracy)


def export_step(
    model: nn.Module, genome: Genome, shape: tuple[int, ...], path: Path, val: Any
) -> dict[str, float]:
    """Writes the student's ONNX file (atomically): fp32 for a float one; QCDQ for a
    quantized one, checked against PyTorch and scored in onnxruntime on ``val``
    (:func:`hwcompress.quant.export.export_checked`).

    Returns:
        The metrics the export measured (``val_accuracy_onnxruntime`` for an integer model).
    """
    if genome.weight_bits:
        from hwcompress.quant.export import export_checked

        _, accuracy = export_checked(model, shape, path, val)
        return {} if accuracy is None else {"val_accuracy_onnxruntime": accuracy}
    with atomic_path(path) as tmp:
        export_fp32(model, shape, tmp)
    return {}


def count_step(
    student: nn.Module,
    genome: Genome,
    shape: tuple[int, ...],
    profile: DeviceProfile,
    act_bits: int = 8,
) -> dict[str, float]:
    """The constraint metrics of the student as it will ship: a float student at the bits
    the device runs it at (:func:`float_counting`), a quantized one at its genome's weight
    bits (8 where the genome names none) and ``act_bits`` activations.

    Args:
        student: The float student (its structure is counted).
        genome: Its genome.
        shape: One input batch's shape.
        profile: The device.
        act_bits: A quantized student's activation bits.
    """
    if genome.weight_bits:
        stats = analyze_module(
            student,
            shape,
            weight_bits=genome.weight_bits,
            default_weight_bits=8,  # what quantize_model gives the layers the genome omits
            activation_bits=act_bits,
        )
    else:
        w_bits, a_bits = float_counting(profile)
        stats = analyze_module(student, shape, default_weight_bits=w_bits, activation_bits=a_bits)
    return stats.metrics(profile)


def measure_model(
    model: nn.Module,
    input_shape: tuple[int, ...],
    onnx_path: Path,
    profile: DeviceProfile,
    **latency_kwargs: Any,
) -> tuple[dict[str, float], LatencyResult]:
    """Exports ``model`` and measures every constraint metric.

    Returns:
        The metrics and the latency measurement (kernels that ran, where it was measured).
    """
    w_bits, a_bits = float_counting(profile)
    stats = analyze_module(model, input_shape, default_weight_bits=w_bits, activation_bits=a_bits)
    export_fp32(model, input_shape, onnx_path)
    lat = measure_latency(onnx_path, profile, **latency_kwargs)
    return {**stats.metrics(profile), "latency_ms": lat.median_ms}, lat


def measure_candidate(
    onnx_path: Path,
    profile: DeviceProfile,
    latency_kwargs: dict[str, Any],
    *,
    reference: Path | None = None,
    teacher_ms: float = 0.0,
) -> tuple[LatencyResult, float | None]:
    """The latency of a candidate's file with the profile's source; with a ``reference``
    (the teacher's file) on a local source, timed in turn with it and scaled to
    ``teacher_ms``, the teacher's latency at the start of the run, so drift between
    minutes cancels out (the ratio is returned too)."""
    if reference is None or profile.latency.source != SourceName.LOCAL:
        return measure_latency(onnx_path, profile, **latency_kwargs), None
    from hwcompress.measure.latency import measure_local_many
    from hwcompress.measure.sources import with_provenance

    mine, ref = measure_local_many([onnx_path, reference], profile, rounds=REFERENCE_ROUNDS)
    ratio = mine.median_ms / max(ref.median_ms, 1e-9)
    lat = mine.scaled(
        teacher_ms / max(ref.median_ms, 1e-9),
        f"timed in turn with the teacher: {ratio:.3f}× its latency",
    )
    return with_provenance(lat, profile), ratio
