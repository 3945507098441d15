"""``hwcompress calibrate``: building a device's latency table from random students.

Each distinct layer configuration of a few random students of the teacher (the candidates a
search will produce) is measured alone with the profile's real source; then the teacher and
a couple of hundred further students are timed whole, in turn, round after round, for the
kernel-level fit (:mod:`hwcompress.measure.kernels`), which is kept when it predicts a
held-out third better than the layer sums. Calibration ends by checking the kept predictor
against full measurements of further random students: the share within ±10 % is stored in
the table and reported.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwcompress.hardware.sections import SourceName
from hwcompress.measure.kernels import KernelFit
from hwcompress.measure.layers import empty_model, layer_model, layers_of
from hwcompress.measure.table import LatencyTable

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile

__all__ = ["CalibrateConfig", "calibrate", "check_table", "measure_whole", "random_students"]


def random_students(
    teacher: Any,
    input_shape: Sequence[int],
    n: int,
    *,
    seed: int = 0,
    widths: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    keep_prob: float = 0.7,
) -> list[tuple[Any, Any]]:
    """``n`` random students of ``teacher`` (the kind a search produces), with their genomes.

    Each removable unit is kept with probability ``keep_prob`` and each shrinkable group gets a
    width drawn from ``widths``; genomes that cannot be built are skipped.
    """
    import torch

    from hwcompress.arch import Genome, build_spec, build_student
    from hwcompress.errors import GenomeError

    spec = build_spec(teacher, input_shape)
    gen = torch.Generator().manual_seed(seed)
    out: list[tuple[Any, Any]] = []
    seen: set[str] = set()
    for _ in range(20 * n):
        if len(out) >= n:
            break
        keep = {u.name: bool(torch.rand((), generator=gen) < keep_prob) for u in spec.removable}
        width = {
            g.key: float(widths[int(torch.randint(len(widths), (), generator=gen))])
            for g in spec.shrinkable
        }
        genome = Genome(keep=keep, width=width)
        if genome.key() in seen:
            continue
        seen.add(genome.key())
        try:
            out.append((build_student(teacher, genome, input_shape, spec=spec), genome))
        except GenomeError:
            continue
    return out


@dataclass(frozen=True, kw_only=True)
class CalibrateConfig:
    """Settings of :func:`calibrate`.

    Attributes:
        students: Random students whose layers are measured.
        fit_students: Random students measured whole for the kernel-level fit (the first
            ``students`` of them are also cut into layers); whole measurements are cheap, and
            the fit's tree correction needs a couple of hundred to generalise.
        check: Further random students measured whole to check the predictions.
        seed: Seed of the students.
        runs: Minimum timed runs per layer measurement (default: the profile's).
        min_time_s: Minimum timed duration per layer measurement (default: the profile's).
        rounds: Rounds in which every whole model is timed in turn.
        round_runs: Timed inferences of each whole model per round.
    """

    students: int = 20
    fit_students: int = 200
    check: int = 10
    seed: int = 0
    runs: int | None = None
    min_time_s: float | None = None
    rounds: int = 40
    round_runs: int = 5

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return dataclasses.asdict(self)


def measure_whole(
    paths: Sequence[Path],
    source: str,
    profile: DeviceProfile,
    *,
    rounds: int = 40,
    runs: int = 5,
) -> list[float]:
    """Median latency (ms) of whole models timed in turn, round after round.

    On this machine every model keeps one session and its result is the median of all its
    inferences (see :func:`~hwcompress.measure.latency.measure_local_many`); another source
    uploads every model once per round, so it gets an eighth of the rounds with eight times
    the runs, and the result is the median over rounds. Many short rounds keep the median
    repeatable on a shared machine, where whole rounds can run up to 2× slower as the
    neighbours' load moves.
    """
    import statistics

    from hwcompress.measure.latency import measure_local_many
    from hwcompress.measure.provenance import measure_real

    if source == SourceName.LOCAL:
        results = measure_local_many(list(paths), profile, rounds=rounds, runs=runs)
        return [r.median_ms for r in results]
    per_round: list[list[float]] = [[] for _ in paths]
    remote_rounds = max(1, rounds // 8)
    runs *= rounds // remote_rounds
    for _ in range(remote_rounds):
        for path, out in zip(paths, per_round, strict=True):
            result = measure_real(source, path, profile, runs=runs, warmup=3, min_time_s=0.0)
            out.append(result.median_ms)
    return [statistics.median(v) for v in per_round]


def calibrate(
    teacher: Any,
    input_shape: Sequence[int],
    profile: DeviceProfile,
    config: CalibrateConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[LatencyTable, list[dict[str, Any]]]:
    """Builds the profile's latency table from random students of ``teacher``.

    Measures with the profile's real source (``remote`` when ``latency.url`` is set, else
    ``local``): each distinct layer alone, then the teacher and every fit and check student
    whole, timed in turn (see :func:`measure_whole`). Fits the
    kernel-level model on the fit students, keeps it when it predicts a held-out third of
    them better than the layer sums, and checks the kept predictor on the ``config.check``
    other students.

    Args:
        teacher: The teacher module (weights do not matter for fp32 latency).
        input_shape: Input shape of one batch, e.g. ``(1, 1, 28, 28)``.
        profile: The device.
        config: Settings.
        progress: Receives one line per step.

    Returns:
        The table (not yet saved) and the check rows (``predicted_ms``, ``measured_ms``,
        ``error``).
    """
    import onnx

    from hwcompress.export.onnx import export_fp32
    from hwcompress.measure.kernels import kernel_features
    from hwcompress.measure.provenance import measure_real, real_source

    config = config or CalibrateConfig()
    say = progress or (lambda _msg: None)
    source = real_source(profile)
    kwargs: dict[str, Any] = {}
    if config.runs is not None:
        kwargs["runs"] = config.runs
    if config.min_time_s is not None:
        kwargs["min_time_s"] = config.min_time_s
    n_fit = max(config.students, config.fit_students)
    drawn = random_students(teacher, input_shape, n_fit + config.check, seed=config.seed)
    students = [s for s, _ in drawn]
    entries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hwcompress-calibrate-") as tmp:
        tmp_path = Path(tmp)
        paths = [export_fp32(teacher, input_shape, tmp_path / "teacher.onnx")]
        paths += [
            export_fp32(s, input_shape, tmp_path / f"student{i}.onnx")
            for i, s in enumerate(students)
        ]
        teacher_model = onnx.load(str(paths[0]))
        empty = tmp_path / "empty.onnx"
        onnx.save(empty_model(teacher_model.opset_import, teacher_model.ir_version), empty)
        base = measure_real(source, empty, profile, **kwargs)
        say(f"fixed cost of one run: {base.median_ms:.4f} ms ({source})")
        for i, path in enumerate(paths[: 1 + config.students]):
            inferred, layers = layers_of(onnx.load(str(path)))
            new = [layer for layer in layers if layer.key not in entries]
            for layer in new:
                layer_path = tmp_path / f"layer{len(entries)}.onnx"
                onnx.save(layer_model(inferred, layer), layer_path)
                ms = measure_real(source, layer_path, profile, **kwargs).median_ms
                entries[layer.key] = {
                    "ms": max(0.0, ms - base.median_ms),
                    "kind": layer.kind,
                    "macs": layer.macs,
                    "elements": layer.elements,
                }
            label = f"student {i - 1}" if i else "teacher"
            say(f"{label}: {len(layers)} layers, {len(new)} new (table: {len(entries)})")
        say(
            f"timing {len(paths)} whole models in turn ({config.rounds} rounds × "
            f"{config.round_runs} inferences each)"
        )
        rounds = {"rounds": config.rounds, "runs": config.round_runs}
        measured = measure_whole(paths, source, profile, **rounds)
        features = [kernel_features(p, profile) for p in paths]
        table = LatencyTable(
            base.median_ms,
            entries,
            {
                "profile": profile.name,
                "source": source,
                "url": profile.latency.url if source == SourceName.REMOTE else None,
                "provider": base.provider,
                "threads": base.threads,
                "input_shape": list(input_shape),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "config": config.to_dict(),
            },
        )
        fit = 1 + n_fit
        table.kernels, table.meta["predictor"] = _choose_predictor(
            table, features[:fit], measured[:fit], paths[:fit]
        )
        say(
            f"predictor: {table.meta['predictor']['chosen']} (held-out third of the whole "
            f"models within ±10 %: kernel-level fit {table.meta['predictor']['kernels']:.0%}, "
            f"layer sums {table.meta['predictor']['layers']:.0%})"
        )
        rows = check_table(table, paths[fit:], measured[fit:], features[fit:])
        for row in rows:
            say(
                f"check: predicted {row['predicted_ms']:.4f} ms, measured "
                f"{row['measured_ms']:.4f} ms ({row['error']:+.1%})"
            )
    table.meta["check"] = summary(rows)
    return table, rows


def check_table(
    table: LatencyTable,
    paths: Sequence[Path],
    measured_ms: Sequence[float],
    features: Sequence[dict[str, float]],
) -> list[dict[str, Any]]:
    """One row per model: the table's prediction beside its measured latency.

    Args:
        table: The table.
        paths: The models' ONNX files.
        measured_ms: Their measured latencies.
        features: Their kernel features.
    """
    import onnx

    rows = []
    for path, measured, feats in zip(paths, measured_ms, features, strict=True):
        _, layers = layers_of(onnx.load(str(path)))
        predicted, fitted = table.predict(layers)
        layer_sum = predicted
        if table.kernels:
            predicted, _ = table.kernels.predict(feats)
        rows.append(
            {
                "layer_info": [[la.key, la.kind, la.macs, la.elements] for la in layers],
                "predicted_ms": predicted,
                "layer_table_ms": layer_sum,
                "measured_ms": measured,
                "error": predicted / measured - 1 if measured > 0 else math.inf,
                "layers": len(layers),
                "fitted": fitted,
            }
        )
    return rows


def _choose_predictor(
    table: LatencyTable,
    features: Sequence[dict[str, float]],
    latencies: Sequence[float],
    paths: Sequence[Path],
) -> tuple[KernelFit | None, dict[str, Any]]:
    """The kernel-level fit, or none (the layer sums predict) when the layer sums do better.

    The fit is made on the first two thirds of the whole-model measurements and both
    predictors are scored on the last third (share within ±10 %); the kept fit is then made
    on all of them.
    """
    import onnx

    cut = max(1, (2 * len(latencies)) // 3)
    trial = KernelFit.fit(features[:cut], latencies[:cut])
    held = list(zip(features[cut:], latencies[cut:], paths[cut:], strict=True))

    def within(predict: Callable[[dict[str, float], Path], float]) -> float:
        ok = [abs(predict(f, p) / ms - 1) <= 0.10 for f, ms, p in held if ms > 0]
        return sum(ok) / max(len(ok), 1)

    kernel_share = within(lambda f, p: trial.predict(f)[0])
    layer_share = within(lambda f, p: table.predict(layers_of(onnx.load(str(p)))[1])[0])
    chosen = "kernels" if kernel_share >= layer_share else "layers"
    info = {"chosen": chosen, "kernels": kernel_share, "layers": layer_share, "held_out": len(held)}
    return (KernelFit.fit(features, latencies) if chosen == "kernels" else None), info


def summary(rows: Sequence[dict[str, Any]], tolerance: float = 0.10) -> dict[str, Any]:
    """Share of predictions within ``tolerance`` of the measurement, and error statistics."""
    if not rows:
        return {"models": 0}
    errors = sorted(abs(r["error"]) for r in rows)
    return {
        "models": len(rows),
        "tolerance": tolerance,
        "within": sum(e <= tolerance for e in errors) / len(errors),
        "median_abs_error": errors[len(errors) // 2],
        "max_abs_error": errors[-1],
    }
