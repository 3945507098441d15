"""One call for a user's own model and data: :func:`compress`.

Where ``hwcompress search`` names a built-in teacher and dataset, :func:`compress` takes the
trained ``nn.Module`` and the DataLoaders a user already has (the way NNCF's ``quantize`` or
Torch-Pruning are used), runs the same search, and hands back the student as a module beside
its ONNX file and metrics::

    import hwcompress

    result = hwcompress.compress(
        model, train_loader, val_loader, profile="raspberry_pi5", target="params=10x"
    )
    result.student          # the compressed nn.Module
    result.onnx             # runs/compress/best/student.onnx
    result.metrics          # params, MACs, latency_ms, val_accuracy, ...

The run folder is a normal search run (journal, report, ``results.json``); ``resume=True``
continues an interrupted one when given the same model and loaders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwcompress.errors import HwCompressError

__all__ = ["CompressResult", "compress"]

#: SearchConfig fields compress() does not take as settings, and what to do instead.
_INSTEAD = {
    "profile": "pass profile=...",
    "target": "pass target=...",
    "out": "pass out=...",
    "teacher": "the model you pass is the teacher",
    "teacher_weights": "load the weights into the model you pass",
    "dataset": "the loaders you pass are the data",
    "data_dir": "the loaders you pass are the data",
    "download": "the loaders you pass are the data",
    "train_limit": "it works with named datasets only; pass max_samples=... or a smaller "
    "train_loader",
    "student": "it works with named datasets only; a searched student is continued with "
    "hwcompress search --student",
}


@dataclass
class CompressResult:
    """What :func:`compress` hands back.

    Attributes:
        student: The compressed model (eval mode): a float module, or one with Brevitas
            quantizers when the quantization stage produced it.
        metrics: The student's measured figures (params, MACs, bytes, latency, accuracy).
        teacher: What was measured of the given model.
        onnx: The student as ONNX (what onnxruntime runs on the device).
        weights: The student's ``weights_only`` checkpoint.
        out: The run folder (journal, report, ``results.json``).
        search: The full search result.
    """

    student: nn.Module
    metrics: dict[str, Any]
    teacher: dict[str, Any]
    onnx: Path
    weights: Path
    out: Path
    search: Any


def compress(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    test_loader: Iterable[Any] | None = None,
    *,
    profile: str = "x86_host",
    target: str | Iterable[str] | None = None,
    out: str | Path = "runs/compress",
    resume: bool = False,
    num_classes: int | None = None,
    max_samples: int | None = None,
    reporter: Any = None,
    **settings: Any,
) -> CompressResult:
    """Searches a smaller student of ``model`` that fits ``profile``, trained from it.

    Args:
        model: The trained teacher: an ``nn.Module`` mapping (N, C, H, W) images to class
            logits. Its weights are not changed (it is put in eval mode).
        train_loader: Training batches ``(images, labels)``; read once into memory.
        val_loader: Validation batches; they rank students (keep them apart from training).
        test_loader: Test batches, only reported (default: the validation batches).
        profile: A built-in profile name or a YAML path.
        target: What the student must reach, e.g. ``"params=10x"`` or
            ``["weight_bytes=64KiB", "latency_ms=2"]``.
        out: The run folder.
        resume: Continue the run in ``out`` (same model, loaders and settings).
        num_classes: The number of classes (default: the width of the model's output).
        max_samples: Read at most this many samples from each loader.
        reporter: A :class:`~hwcompress.search.progress.SearchReporter` for progress.
        **settings: Any other :class:`~hwcompress.search.SearchConfig` field, e.g.
            ``episodes=4``, ``method="drl-prune"``, ``stages=("removal", "shrinkage",
            "quantization")``, ``budget_minutes=30``, ``seed=1``.

    Returns:
        The student, its metrics and where its files are.

    Raises:
        HwCompressError: On a bad setting, a model that cannot be traced, loaders that do not
            yield ``(images, labels)``, or a run that produced no student.
    """
    from hwcompress.data.loaders import bundle_from_loaders
    from hwcompress.data.teachers import Teacher
    from hwcompress.search import SearchConfig, load_search_config, run_search

    if not isinstance(model, nn.Module):
        raise HwCompressError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    known = {f.name for f in fields(SearchConfig)}
    for name in settings:
        if name in _INSTEAD:
            raise HwCompressError(f"compress(): {name} is not a setting here; {_INSTEAD[name]}")
        if name not in known:
            raise HwCompressError(
                f"compress(): unknown setting {name!r}; choose among "
                f"{', '.join(sorted(known - _INSTEAD.keys()))}"
            )
    teacher_model = model.eval()
    batch = next(iter(val_loader), None)
    if num_classes is None:
        if not isinstance(batch, (tuple, list)) or not isinstance(batch[0], torch.Tensor):
            raise HwCompressError(
                "val_loader must yield (images, labels) batches; pass num_classes if the "
                "model's output width is not the number of classes"
            )
        with torch.no_grad():
            try:
                logits = teacher_model(batch[0][:1].float())
            except Exception as err:
                raise HwCompressError(
                    f"model cannot run on val_loader's images of shape "
                    f"{tuple(batch[0].shape[1:])} ({type(err).__name__}: {err})"
                ) from None
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise HwCompressError(
                "model must return class logits of shape (N, classes); got "
                f"{getattr(logits, 'shape', type(logits).__name__)}"
            )
        num_classes = int(logits.shape[1])
    data = bundle_from_loaders(
        train_loader,
        val_loader,
        test_loader,
        num_classes=num_classes,
        max_samples=max_samples,
    )
    targets = (target,) if isinstance(target, str) else tuple(target or ())
    spec = f"object:{type(model).__name__}"
    config = SearchConfig(
        profile=profile,
        teacher=spec,
        dataset="loaders",
        target=targets,
        out=str(out),
        **settings,
    )
    if resume:
        config = load_search_config(out, {**settings, "teacher": spec, "target": targets})
    teacher = Teacher(spec, teacher_model, source="the model passed to compress()")
    result = run_search(config, resume=resume, reporter=reporter, teacher=teacher, data=data)
    if result.best is None or result.student is None:
        raise HwCompressError(
            f"compress(): no student came out of the run in {result.out}; see "
            f"{result.results_path} (every candidate's reason) and give a longer budget"
        )
    return CompressResult(
        student=result.student,
        metrics=dict(result.best.metrics),
        teacher=result.teacher,
        onnx=result.out / "best" / "student.onnx",
        weights=result.out / "best" / "student.pt",
        out=result.out,
        search=result,
    )
