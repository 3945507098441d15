"""How proposals are kept within a run's budgets where latency steers: the run's latency
model (read back, or calibrated on the device), and the record of how often proposals had to
be scaled down (``results.json``'s ``feasibility``)."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwcompress.arch import Genome
from hwcompress.hardware.sections import SourceName
from hwcompress.measure.result import LatencyResult
from hwcompress.search.candidate import Candidate, Status
from hwcompress.search.config import SearchConfig
from hwcompress.search.evaluate import SearchContext
from hwcompress.search.latency_memo import FILE_NAME as MEMO_FILE
from hwcompress.search.latency_memo import LatencyMemo
from hwcompress.search.latency_model import FILE_NAME, LatencyModel, calibrate
from hwcompress.search.progress import SearchReporter
from hwcompress.search.target import size_caps

__all__ = ["feasibility", "latency_model", "untrained_latency"]


def latency_model(
    ctx: SearchContext, config: SearchConfig, out: Path, reporter: SearchReporter
) -> LatencyModel | None:
    """The run's latency model when a latency budget (a target or the profile's) is
    tighter than the teacher's latency: read from the run folder, else calibrated now."""
    cap = size_caps(ctx.matrix, ("latency_ms",)).get("latency_ms")
    teacher_ms = float(ctx.teacher_metrics.get("latency_ms", 0.0))
    if cap is None or teacher_ms <= cap or "latency_ms" not in ctx.matrix.metrics:
        return None
    path = out / FILE_NAME
    if path.is_file():
        try:
            model = LatencyModel.load(path)
        except (ValueError, KeyError, TypeError, OSError):
            reporter.message(f"{path} is unreadable; calibrating the latency model again")
        else:
            _use_reference(ctx, out, reporter)
            # it predicts ratios to the teacher: in this run's milliseconds, as the budget
            # (``3x``) and the kept timings are
            return dataclasses.replace(model, teacher_ms=teacher_ms)
    multiple = ctx.profile.runtime.channel_multiple
    model = calibrate(
        ctx.teacher,
        ctx.spec,
        ctx.profile,
        teacher_ms,
        students=config.latency_students,
        seed=config.seed,
        block=multiple if multiple > 1 else 8,
        multiple=multiple,
        progress=reporter.message,
    )
    model.save(path)
    reporter.message(
        f"latency model: fitted on {model.fitted_on} students in {model.seconds:.0f} s, "
        f"median error {model.median_error:.1%} (leave-one-out); budget {cap:.4g} ms, "
        f"{teacher_ms / cap:.2f}× faster than the teacher"
    )
    _use_reference(ctx, out, reporter)
    return model


def untrained_latency(ctx: SearchContext) -> Callable[[Genome], float] | None:
    """``genome ↦`` the measured latency (ms) of the untrained student it describes, timed
    in turn with the teacher on this machine (latency does not depend on the weights'
    values); None unless latency is measured here (a ``local`` source) and steers the run.
    Seeds matched to a latency budget are checked with it, as a practitioner prunes until
    the model is fast enough when timed. Each structure's timing is kept (``ctx.latencies``):
    the seed chosen is evaluated on the timing that chose it."""
    if ctx.latency_reference is None or ctx.profile.latency.source != SourceName.LOCAL:
        return None
    from hwcompress.arch import build_student
    from hwcompress.export import export_fp32
    from hwcompress.search.pipeline import measure_candidate, structure_of

    teacher_ms = float(ctx.teacher_metrics["latency_ms"])

    def timed(genome: Genome) -> tuple[LatencyResult, float | None]:
        shape = ctx.data.input_shape
        student = build_student(ctx.teacher, structure_of(genome), shape, spec=ctx.spec)
        with tempfile.TemporaryDirectory(prefix="hwcompress-seed-") as tmp:
            path = export_fp32(student.eval(), shape, Path(tmp) / "seed.onnx")
            return measure_candidate(
                path,
                ctx.profile,
                ctx.latency_kwargs,
                reference=ctx.latency_reference,
                teacher_ms=teacher_ms,
            )

    def measure(genome: Genome) -> float:
        if ctx.latencies is None:
            return timed(genome)[0].median_ms
        lat, _ = ctx.latencies.measured(genome.key(), teacher_ms, lambda: timed(genome))
        return lat.median_ms

    return measure


def _use_reference(ctx: SearchContext, out: Path, reporter: SearchReporter) -> None:
    """Candidates are timed in turn with the teacher (drift between minutes cancels), and
    each structure's first timing is kept (``latencies.json``)."""
    if ctx.profile.latency.source != SourceName.LOCAL:
        return
    ctx.latency_reference = out / "teacher.onnx"
    ctx.latencies = LatencyMemo(out / MEMO_FILE, memo_context(ctx))
    if ctx.latencies.ignored:
        reporter.message(ctx.latencies.ignored)
    elif len(ctx.latencies):
        reporter.message(f"{len(ctx.latencies)} structures' timings read from {ctx.latencies.path}")


def memo_context(ctx: SearchContext) -> dict[str, Any]:
    """What a kept timing holds for: the device profile and the teacher (a digest of its
    weights and its input shape)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(ctx.teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {
        "profile": ctx.profile.name,
        "teacher": digest.hexdigest()[:16],
        "input_shape": list(ctx.data.input_shape),
    }


def feasibility(
    candidates: list[Candidate], episodes: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per stage: its policy samples, the share of them feasible, and how many proposals
    were scaled down to the budgets before training (the share that would have missed)."""
    out: dict[str, dict[str, Any]] = {}
    for cand in candidates:
        if cand.episode < 0 or cand.method == "baseline":
            continue
        row = out.setdefault(cand.stage, {"samples": 0, "feasible": 0, "clamped": 0})
        row["samples"] += 1
        row["feasible"] += int(cand.status == Status.OK and cand.feasible)
    proposals: dict[str, int] = {}
    for rec in episodes:
        row = out.setdefault(rec["stage"], {"samples": 0, "feasible": 0, "clamped": 0})
        row["clamped"] += int(rec.get("clamped", 0))
        proposals[rec["stage"]] = proposals.get(rec["stage"], 0) + len(rec.get("rewards", []))
    for stage, row in out.items():
        row["feasible_share"] = row["feasible"] / row["samples"] if row["samples"] else None
        n = proposals.get(stage, 0)
        row["proposals"] = n
        row["clamped_share"] = row["clamped"] / n if n else None
    return out
