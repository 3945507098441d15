"""The end of a run: the product chosen, distilled further if asked, saved with its test
accuracy and constraint report; ``results.json`` and the report written."""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hwcompress.arch import Genome
from hwcompress.data import load_data
from hwcompress.data.teachers import load_checkpoint
from hwcompress.errors import HwCompressError
from hwcompress.files import atomic_path, save_atomic, write_atomic
from hwcompress.hardware.sections import SourceName
from hwcompress.search.candidate import Candidate, Status
from hwcompress.search.config import SearchConfig
from hwcompress.search.evaluate import SearchContext
from hwcompress.search.pipeline import export_step, rebuild_candidate, train_step
from hwcompress.search.setup import data_config
from hwcompress.train import DistillConfig, TeacherLogits, evaluate
from hwcompress.train.augment import shift_for


@dataclass
class SearchResult:
    """The outcome of a run (also written as ``results.json``)."""

    out: Path
    teacher: dict[str, Any]
    best: Candidate | None
    stages: dict[str, Candidate]
    candidates: list[Candidate] = field(default_factory=list)
    results_path: Path | None = None
    interrupted_by_budget: bool = False
    final_distillation: dict[str, Any] | None = None
    best_info: dict[str, Any] | None = None
    #: The product as a module (float, or with Brevitas quantizers), in eval mode.
    student: torch.nn.Module | None = None
    #: What the user judges it by (``results.json``'s ``summary``; see :func:`summary`).
    summary: dict[str, Any] | None = None


def final_distill(
    config: SearchConfig,
    ctx: SearchContext,
    student: torch.nn.Module,
    genome: Genome,
    onnx_path: Path,
) -> tuple[dict[str, Any], Any]:
    """Distils the product ``config.final_epochs`` more epochs (at least ``final_min_steps``
    steps; with ``final_augment``, on shifted images) on the whole training split and
    re-exports it, through the steps every candidate went through
    (:func:`~hwcompress.search.pipeline.train_step`, :func:`~.pipeline.export_step`); the
    candidate's own record keeps its search-time figures.

    Returns:
        What the fine-tune did, and the data it used.
    """
    data = ctx.data
    logits = ctx.teacher_logits
    if config.train_limit is not None:
        data = load_data(data_config(config, limited=False))
        logits = TeacherLogits(ctx.teacher, data.train, seed=config.seed)
    before = evaluate(student, data.val)
    start = time.perf_counter()
    epochs = max(config.final_epochs, math.ceil(config.final_min_steps / max(len(data.train), 1)))
    shift = shift_for(data.input_shape) if config.final_augment else 0
    accuracy = train_step(
        student,
        genome,
        ctx.teacher,
        data,
        DistillConfig(
            epochs=epochs,
            patience=epochs,
            seed=config.seed,
            kd_weight=config.kd_weight,
            shift=shift,
            device=ctx.distill_config.device,
        ),
        logits,
    )
    seconds = time.perf_counter() - start
    export_step(student, genome, data.input_shape, onnx_path, data.val)
    return {
        "epochs": epochs,
        "shift_pixels": shift,
        "train_samples": len(data.train.dataset),
        "val_accuracy_before": before,
        "val_accuracy": accuracy,
        "seconds": seconds,
    }, data


def latency_check(
    ctx: SearchContext, teacher_info: dict[str, Any], out: Path, onnx_path: Path, best: Candidate
) -> dict[str, Any] | None:
    """With the ``table`` source, measures the teacher and the product for real (on the board
    when the profile names a server): the table's predictions beside the measurements."""
    from hwcompress.measure.sources import measure_with, real_source

    profile = ctx.profile
    if profile.latency.source != SourceName.TABLE:
        return None
    source = real_source(profile)
    try:
        teacher_ms = measure_with(source, out / "teacher.onnx", profile).median_ms
        best_ms = measure_with(source, onnx_path, profile).median_ms
    except HwCompressError as err:
        return {"source": source, "error": str(err)}
    teacher_pred = float(teacher_info["metrics"]["latency_ms"])
    best_pred = float(best.metrics["latency_ms"])
    return {
        "source": source,
        "teacher_ms": teacher_ms,
        "teacher_predicted_ms": teacher_pred,
        "best_ms": best_ms,
        "best_predicted_ms": best_pred,
        "speedup": teacher_ms / best_ms if best_ms > 0 else None,
    }


def summary(
    out: Path, teacher_info: dict[str, Any], best_info: dict[str, Any] | None
) -> dict[str, Any] | None:
    """What a user judges the product by, in one place (``results.json``'s ``summary``):
    size ratio, measured speed-up on this device and where it was measured, the accuracy
    change on the test split (validation beside it: what the search ranked by), the file to
    deploy and the command that exports it as int8; ``headline`` says it in one line."""
    if best_info is None:
        return None
    t, m = teacher_info["metrics"], best_info["metrics"]
    compression = t["params"] / max(m["params"], 1)
    speedup = t["latency_ms"] / m["latency_ms"] if m.get("latency_ms") else None
    final = best_info.get("final_distillation") or {}
    val = float(final.get("val_accuracy", m["val_accuracy"]))
    test, t_test = best_info.get("test_accuracy"), teacher_info.get("test_accuracy")
    test_points = 100 * (test - t_test) if test is not None and t_test is not None else None
    val_points = 100 * (val - teacher_info["val_accuracy"])
    accuracy = (
        f"{test_points:+.2f} points on test"
        if test_points is not None
        else f"{val_points:+.2f} points on validation"
    )
    faster = f"{speedup:.1f}× faster here" if speedup is not None else "latency unmeasured"
    return {
        "headline": f"{compression:.1f}× fewer parameters, {faster}, {accuracy}",
        "compression": compression,
        "speedup": speedup,
        "latency_where": teacher_info.get("latency_where", ""),
        "test_accuracy": test,
        "teacher_test_accuracy": t_test,
        "test_change_points": test_points,
        "val_accuracy": val,
        "teacher_val_accuracy": teacher_info["val_accuracy"],
        "val_change_points": val_points,
        "ranked_by": "validation accuracy (the test split never steers the search)",
        "deploy": "best/student.onnx",
        "export_int8": f"hwcompress export {out} --out student_int8.onnx",
    }


def write_report(out: Path) -> None:
    """The HTML report of the run; a failure to draw it never loses the run's results."""
    from hwcompress.report import write_report as render

    try:
        render(out)
    except Exception as err:
        warnings.warn(f"the report of {out} could not be written: {err}", stacklevel=2)


def finish_run(
    out: Path,
    config: SearchConfig,
    ctx: SearchContext,
    teacher_info: dict[str, Any],
    candidates: list[Candidate],
    best: Candidate | None,
    *,
    chosen: dict[str, Any],
    stage_best: dict[str, Candidate],
    out_of_time: bool,
    budget: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> SearchResult:
    """Saves the product and writes ``results.json`` and the report.

    Args:
        out: The run folder.
        config: The run's settings.
        ctx: The run's context.
        teacher_info: What was measured of the teacher.
        candidates: Every candidate of the run.
        best: The product (see :func:`hwcompress.search.product.select_product`).
        chosen: Why the product was chosen.
        stage_best: Each stage's best candidate.
        out_of_time: Whether a stage's time budget ran out.
        budget: The time budget's split among the stages, if there was one.
        extra: More top-level entries of ``results.json`` (the latency model, feasibility).

    Returns:
        The run's result.
    """
    data, teacher, matrix, act_bits = ctx.data, ctx.teacher, ctx.matrix, ctx.act_bits
    candidates = sorted(candidates, key=lambda c: (c.stage, c.episode, c.id))
    best_info: dict[str, Any] | None = None
    student: torch.nn.Module | None = None
    if best is not None:
        best_dir = out / "best"
        best_dir.mkdir(exist_ok=True)
        with atomic_path(best_dir / "student.onnx") as tmp:
            shutil.copyfile(out / best.artifacts["onnx"], tmp)
        ckpt = load_checkpoint(out / best.artifacts["weights"])
        weight_range = ckpt.get("meta", {}).get("weight_range_bits")  # quantized students only
        genome = Genome.from_dict(best.genome)
        student = rebuild_candidate(
            teacher,
            genome,
            data.input_shape,
            ckpt["state_dict"],
            spec=ctx.spec,
            act_bits=act_bits,
            weight_range_bits=weight_range,
        )
        final: dict[str, Any] | None = None
        if config.final_epochs and not genome.weight_bits:
            final, data = final_distill(config, ctx, student, genome, best_dir / "student.onnx")
        save_atomic(
            {
                "state_dict": student.state_dict(),
                "meta": {
                    **ctx.student_meta,
                    "genome": best.genome,
                    "quantized": bool(genome.weight_bits),
                    "act_bits": act_bits,
                    **({"weight_range_bits": weight_range} if weight_range is not None else {}),
                    "metrics": best.metrics,
                },
            },
            best_dir / "student.pt",
        )
        best_info = {
            **best.to_dict(),
            "chosen": chosen,
            "test_accuracy": evaluate(student, data.test),
            "final_distillation": final,
            "latency_check": latency_check(ctx, teacher_info, out, best_dir / "student.onnx", best),
            "constraints": matrix.report(best.metrics),
            "artifacts": {
                **best.artifacts,
                "onnx_best": "best/student.onnx",
                "weights_best": "best/student.pt",
            },
        }
    results = {
        "version": 1,
        "profile": config.profile,
        "method": config.method,
        "seed": config.seed,
        "device": ctx.profile.summary(),
        "teacher": teacher_info,
        "constraint_activity": matrix.activity(
            [c.slack for c in candidates if c.status == Status.OK and c.slack]
        ),
        "best": best_info,
        "stages": {s: c.to_dict() for s, c in stage_best.items()},
        "candidates": [c.to_dict() for c in candidates],
        "stopped_by_budget": out_of_time,
        "budget": budget,
        "target": list(config.target),
        **(extra or {}),
    }
    from hwcompress.search.front import latency_front

    results["front"] = latency_front(results)
    results["summary"] = summary(out, teacher_info, best_info)
    path = out / "results.json"
    write_atomic(path, json.dumps(results, indent=2))
    write_report(out)
    return SearchResult(
        out=out,
        teacher=teacher_info,
        best=best,
        stages=stage_best,
        candidates=candidates,
        results_path=path,
        interrupted_by_budget=out_of_time,
        final_distillation=best_info["final_distillation"] if best_info else None,
        best_info=best_info,
        summary=results["summary"],
        student=student.eval() if student is not None else None,
    )
