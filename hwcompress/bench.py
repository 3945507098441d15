"""``hwcompress bench``: everything known about one ONNX model on one device.

Static metrics, latency from the profile's source with the kernels that ran, the roofline
floor, and each constraint row with its slack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hwcompress.hardware.constraints import ConstraintMatrix
from hwcompress.hardware.profile import DeviceProfile
from hwcompress.hardware.sections import SourceName
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.result import LatencyResult
from hwcompress.measure.roofline import Roofline, roofline
from hwcompress.measure.sources import measure_latency
from hwcompress.measure.stats import ModelStats


@dataclass(frozen=True)
class BenchReport:
    """The result of benchmarking one model against one profile."""

    model: str
    profile: str
    stats: ModelStats
    latency: LatencyResult
    roofline: Roofline
    constraints: list[dict[str, Any]]
    values: dict[str, float]

    @property
    def fits(self) -> bool:
        """True if every constraint row holds."""
        return all(row["ok"] for row in self.constraints)

    def metrics(self) -> dict[str, float]:
        """The metric vector the constraint matrix reads."""
        return dict(self.values)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for ``--json``."""
        stats = asdict(self.stats)
        stats.pop("layers", None)
        return {
            "model": self.model,
            "profile": self.profile,
            "static": stats,
            "latency": self.latency.to_dict(),
            "roofline": asdict(self.roofline),
            "constraints": self.constraints,
            "fits": self.fits,
        }


def bench(
    onnx_path: str | Path,
    profile: DeviceProfile,
    *,
    runs: int | None = None,
    warmup: int | None = None,
) -> BenchReport:
    """Benchmarks an ONNX model against a device profile.

    Args:
        onnx_path: The model.
        profile: The device.
        runs: Minimum timed runs (local source); default from the profile.
        warmup: Untimed runs first; default from the profile.

    Returns:
        The report.

    Raises:
        ModelError: If the model cannot be loaded, analysed or run.
        LatencyError: If latency cannot be measured.
    """
    stats = analyze_onnx(onnx_path)
    kwargs: dict[str, Any] = {}
    if profile.latency.source == SourceName.LOCAL:
        kwargs = {"runs": runs, "warmup": warmup}
    latency = measure_latency(onnx_path, profile, **kwargs)
    floor = roofline(stats, profile, stats.precision)
    matrix = ConstraintMatrix.from_profile(profile)
    metrics = {**stats.metrics(profile), "latency_ms": latency.median_ms}
    return BenchReport(
        model=str(onnx_path),
        profile=profile.name,
        stats=stats,
        latency=latency,
        roofline=floor,
        constraints=matrix.report(metrics),
        values=metrics,
    )
