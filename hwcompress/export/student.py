"""Deployable export of a searched student: ``hwcompress export RUN_DIR|STUDENT``.

A student checkpoint (``best/student.pt`` of a search run) holds weights only, loadable with
``weights_only=True``, and a ``meta`` dict naming the teacher architecture, the genome and the
input shape. The student is rebuilt from those (the teacher's weights are not needed), then
written in one of :data:`EXPORT_FORMATS`:

- ``onnx``: fp32 ONNX of a float student.
- ``qcdq``: integer ONNX (QuantizeLinear/Clip/DequantizeLinear around each conv and linear)
  that onnxruntime fuses into integer kernels. A quantized student is exported as trained; a
  float student is quantized to int8 after training (calibrated on training data). Top-1
  agreement between PyTorch and onnxruntime on the validation split must reach 99%.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from hwcompress.errors import HwCompressError, TeacherError

__all__ = [
    "EXPORT_FORMATS",
    "ExportReport",
    "LoadedStudent",
    "export_student",
    "load_student",
    "student_checkpoint_path",
]


class StudentError(HwCompressError):
    """A student checkpoint or run folder that cannot be exported."""


@dataclass
class LoadedStudent:
    """A student rebuilt from its checkpoint."""

    model: nn.Module
    meta: dict[str, Any]
    source: Path

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of a batch of one."""
        return tuple(self.meta["input_shape"])

    @property
    def quantized(self) -> bool:
        """Whether the student was trained with quantized weights (QAT)."""
        return bool(self.meta.get("quantized"))


@dataclass
class ExportReport:
    """What an export wrote and what was checked."""

    path: Path
    format: str
    quantized_by: str  # "" (float), "qat" (searched bit-widths) or "ptq-int8"
    file_bytes: int
    weight_bytes: int
    peak_activation_bytes: int = 0
    kernels: dict[str, int] = field(default_factory=dict)
    integer_kernels: dict[str, int] = field(default_factory=dict)
    float_compute_kernels: dict[str, int] = field(default_factory=dict)
    dequantize_left: int = 0
    parity: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for JSON."""
        return {
            "path": str(self.path),
            "format": self.format,
            "quantized_by": self.quantized_by,
            "file_bytes": self.file_bytes,
            "weight_bytes": self.weight_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "kernels": self.kernels,
            "integer_kernels": self.integer_kernels,
            "float_compute_kernels": self.float_compute_kernels,
            "dequantize_left": self.dequantize_left,
            "parity": self.parity,
            "accuracy": self.accuracy,
            "notes": self.notes,
        }


_REQUIRED_META = ("genome", "teacher", "input_shape", "num_classes")


def student_checkpoint_path(path: str | Path) -> Path:
    """The student checkpoint that ``path`` names: a file, or a run folder's ``best/student.pt``.

    Raises:
        StudentError: If nothing exportable is there.
    """
    path = Path(path)
    if path.is_dir():
        ckpt = path / "best" / "student.pt"
        if ckpt.is_file():
            return ckpt
        if (path / "config.json").is_file():
            raise StudentError(
                f"{path}: this search run has no best student yet (no best/student.pt); "
                "finish it with 'hwcompress search --out "
                f"{path} --resume' or export a candidate file from {path}/candidates"
            )
        raise StudentError(
            f"{path}: not a search run folder (no best/student.pt); pass the --out folder of "
            "'hwcompress search' or a student .pt file"
        )
    if not path.exists():
        raise StudentError(
            f"{path}: no such file or folder; pass a search run folder or its best/student.pt"
        )
    return path


def load_student(path: str | Path, *, teacher: str | None = None) -> LoadedStudent:
    """Rebuilds a student (float or quantized) from a checkpoint or a run folder.

    Args:
        path: A student ``.pt`` file or a search run folder.
        teacher: The teacher spec the caller vouches for. A checkpoint whose teacher is a
            ``module.path:factory`` is rebuilt only if this names the same factory: code is
            never imported because a file names it.

    Raises:
        StudentError: If the checkpoint is unreadable, lacks its metadata, names code to
            import, or does not fit.
    """
    from hwcompress.arch import Genome
    from hwcompress.data.teachers import build_teacher, check_file_teacher, load_checkpoint
    from hwcompress.search.evaluate import rebuild_candidate

    ckpt_path = student_checkpoint_path(path)
    try:
        ckpt = load_checkpoint(ckpt_path)
    except TeacherError as err:
        raise StudentError(str(err)) from None
    meta = dict(ckpt.get("meta") or {})
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise StudentError(
            f"{ckpt_path}: not a hwcompress student checkpoint (its meta lacks "
            f"{', '.join(missing)}); export the best/student.pt that 'hwcompress search' wrote"
        )
    try:
        check_file_teacher(meta["teacher"], str(ckpt_path), teacher)
    except TeacherError as err:
        raise StudentError(str(err)) from None
    try:
        shape = tuple(int(d) for d in meta["input_shape"])
        genome = Genome.from_dict(meta["genome"])
        teacher_model = build_teacher(
            meta["teacher"], int(meta["num_classes"]), shape[1], shape[-1]
        )
        model = rebuild_candidate(
            teacher_model,
            genome,
            shape,
            ckpt["state_dict"],
            act_bits=int(meta.get("act_bits", 8)),
            # checkpoints from before the range was recorded were trained with 7 bits
            weight_range_bits=int(meta.get("weight_range_bits", 7))
            if meta.get("quantized")
            else None,
        )
    except (HwCompressError, RuntimeError, KeyError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StudentError(
            f"{ckpt_path}: cannot rebuild the student from its checkpoint ({first}); was it "
            "written by this version of hwcompress?"
        ) from None
    return LoadedStudent(model=model, meta=meta, source=ckpt_path)


Exporter = Callable[[LoadedStudent, Path, Any], ExportReport]
#: Export formats by name.
EXPORT_FORMATS: dict[str, Exporter] = {}


def register_format(name: str) -> Callable[[Exporter], Exporter]:
    """Registers an exporter under ``name``."""

    def wrap(fn: Exporter) -> Exporter:
        EXPORT_FORMATS[name] = fn
        return fn

    return wrap


def _report(path: Path, fmt: str, quantized_by: str, **extra: Any) -> ExportReport:
    from hwcompress.measure.onnx_graph import analyze_onnx
    from hwcompress.measure.onnx_ops import FLOAT_COMPUTE_KERNELS, INTEGER_KERNELS
    from hwcompress.measure.ort_graph import dequantize_left, kernel_counts

    graph = onnxruntime_graph(path)
    kernels = kernel_counts(graph)
    stats = analyze_onnx(path)
    return ExportReport(
        path=path,
        format=fmt,
        quantized_by=quantized_by,
        file_bytes=path.stat().st_size,
        weight_bytes=stats.weight_bytes,
        peak_activation_bytes=stats.peak_activation_bytes,
        kernels=kernels,
        integer_kernels={k: n for k, n in kernels.items() if k.split(":")[-1] in INTEGER_KERNELS},
        float_compute_kernels={
            k: n for k, n in kernels.items() if k.split(":")[-1] in FLOAT_COMPUTE_KERNELS
        },
        dequantize_left=dequantize_left(graph) if fmt == "qcdq" else 0,
        **extra,
    )


def onnxruntime_graph(path: Path) -> Any:
    """onnxruntime's optimised graph of ``path`` (CPU, all optimisations)."""
    import onnxruntime as ort

    from hwcompress.measure.ort_graph import optimized_graph

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return optimized_graph(so, path, "CPUExecutionProvider")


@register_format("onnx")
def _export_onnx(student: LoadedStudent, out: Path, data: Any) -> ExportReport:
    from hwcompress.export.onnx import export_fp32

    if student.quantized:
        raise StudentError(
            f"{student.source}: this student was trained with quantized weights; export it "
            "with --format qcdq (float ONNX would drop what quantization-aware training learnt)"
        )
    export_fp32(student.model, student.input_shape, out)
    return _report(out, "onnx", "")


@register_format("qcdq")
def _export_qcdq(student: LoadedStudent, out: Path, data: Any) -> ExportReport:
    from hwcompress.quant.convert import clamp_to_activation_ceilings, post_training_quantize
    from hwcompress.quant.export import export_checked
    from hwcompress.train import evaluate

    notes: list[str] = []
    model = student.model
    quantized_by = "qat"
    accuracy: dict[str, float] = {}
    if not student.quantized:
        if data is None:
            raise StudentError(
                f"{student.source}: a float student needs calibration data for int8 export; "
                "give the dataset (or export it with --format onnx)"
            )
        accuracy["val_float"] = evaluate(model, data.val)
        model = post_training_quantize(model, data.train_in_order())
        quantized_by = "ptq-int8"
        notes.append(
            "float student quantized to int8 after training (no QAT); for the accuracy of "
            "quantization-aware training run the search with the quantization stage"
        )
    elif lowered := clamp_to_activation_ceilings(model):
        notes.append(
            f"{lowered} activation range(s) after ReLU6 lowered to 6, so onnxruntime fuses the "
            "clip into the integer kernel"
        )
    agreement, ort_accuracy = export_checked(
        model, student.input_shape, out, None if data is None else data.val
    )
    if data is None:
        notes.append("no validation data: PyTorch/onnxruntime parity not checked")
    else:
        if student.quantized:
            accuracy["val_pytorch"] = evaluate(model, data.val)
    if ort_accuracy is not None:
        accuracy["val_onnxruntime"] = ort_accuracy
    report = _report(out, "qcdq", quantized_by, parity=agreement, accuracy=accuracy, notes=notes)
    if report.float_compute_kernels:
        report.notes.append(
            "onnxruntime still runs these in float: "
            + ", ".join(f"{k}×{n}" for k, n in report.float_compute_kernels.items())
        )
    return report


def default_format(student: LoadedStudent) -> tuple[str, str]:
    """The format ``export`` writes when none is asked for, and why.

    A quantized student exports as integer ONNX (``qcdq``); a float one as integer ONNX where
    its run's device has 8-bit kernels, else as fp32 ONNX (``onnx``): a Jetson Nano, which
    has no int8 kernels, gets the float model it can run.
    """
    if student.meta.get("quantized"):
        return "qcdq", "the student is quantized"
    name = student.meta.get("profile")
    if not name:
        return "qcdq", "the run did not record its device"
    from hwcompress.hardware import load_profile

    try:
        bits = load_profile(str(name)).bits
    except HwCompressError:
        return "qcdq", f"the run's profile {name} could not be loaded"
    if 8 in bits.weight and 8 in bits.activation:
        return "qcdq", f"{name} has 8-bit kernels"
    return "onnx", f"{name} has no 8-bit kernels ({bits.describe()})"


def export_student(
    student: LoadedStudent, fmt: str, out: str | Path, data: Any = None
) -> ExportReport:
    """Writes ``student`` as ``fmt`` to ``out`` and checks what onnxruntime runs.

    Args:
        student: From :func:`load_student`.
        fmt: One of :data:`EXPORT_FORMATS`.
        out: The ``.onnx`` file to write; it is replaced only once the export succeeded.
        data: A :class:`~hwcompress.data.DataBundle` for calibration and the parity check.

    Raises:
        StudentError: On an unknown format or a student the format cannot take.
        QuantizationError: If onnxruntime and PyTorch agree on fewer than 99% of samples.
    """
    if fmt not in EXPORT_FORMATS:
        raise StudentError(
            f"--format: unknown format '{fmt}'; choose one of {', '.join(sorted(EXPORT_FORMATS))}"
        )
    out = Path(out)
    if out.is_dir():
        raise StudentError(f"--out {out} is a folder; give the .onnx file to write")
    tmp = out.with_name(out.name + ".partial.onnx")
    try:
        report = EXPORT_FORMATS[fmt](student, tmp, data)
    except BaseException:
        tmp.unlink(missing_ok=True)  # an earlier file at ``out`` stays as it was
        raise
    tmp.replace(out)
    report.path = out
    return report
