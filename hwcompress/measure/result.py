"""A latency measurement's statistics and provenance: :class:`LatencyResult`."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any

from hwcompress.measure.onnx_ops import FLOAT_COMPUTE_KERNELS, INTEGER_KERNELS

__all__ = ["LatencyResult", "summarize"]


@dataclass(frozen=True)
class LatencyResult:
    """Latency statistics of one model, in milliseconds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    mean_ms: float
    stdev_ms: float
    runs: int
    source: str
    provider: str = ""
    threads: int = 0
    kernels: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: Where the figure came from, in words (this host, the board at a URL, a table, the
    #: roofline), and a warning when that is not the profile's device.
    where: str = ""
    warning: str = ""

    @property
    def integer_kernels(self) -> dict[str, int]:
        """The integer kernels among :attr:`kernels`."""
        return {k: n for k, n in self.kernels.items() if k.split(":")[-1] in INTEGER_KERNELS}

    @property
    def float_compute_kernels(self) -> dict[str, int]:
        """The float convolution/matmul kernels among :attr:`kernels`."""
        return {k: n for k, n in self.kernels.items() if k.split(":")[-1] in FLOAT_COMPUTE_KERNELS}

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for JSON."""
        return {
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "min_ms": self.min_ms,
            "mean_ms": self.mean_ms,
            "stdev_ms": self.stdev_ms,
            "runs": self.runs,
            "source": self.source,
            "provider": self.provider,
            "threads": self.threads,
            "kernels": dict(self.kernels),
            "integer_kernels": self.integer_kernels,
            "notes": list(self.notes),
            "where": self.where,
            "warning": self.warning,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyResult:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        return cls(
            median_ms=float(data["median_ms"]),
            p90_ms=float(data["p90_ms"]),
            min_ms=float(data["min_ms"]),
            mean_ms=float(data["mean_ms"]),
            stdev_ms=float(data["stdev_ms"]),
            runs=int(data["runs"]),
            source=str(data["source"]),
            provider=str(data.get("provider", "")),
            threads=int(data.get("threads", 0)),
            kernels={str(k): int(v) for k, v in dict(data.get("kernels", {})).items()},
            notes=tuple(str(n) for n in data.get("notes", ())),
            where=str(data.get("where", "")),
            warning=str(data.get("warning", "")),
        )

    @classmethod
    def estimate(cls, ms: float, source: str, *notes: str, **info: Any) -> LatencyResult:
        """A single estimated figure (no runs), e.g. from the roofline or a latency table."""
        return cls(
            median_ms=ms,
            p90_ms=ms,
            min_ms=ms,
            mean_ms=ms,
            stdev_ms=0.0,
            runs=0,
            source=source,
            notes=notes,
            **info,
        )

    def with_notes(self, *notes: str) -> LatencyResult:
        """A copy with ``notes`` appended."""
        return dataclasses.replace(self, notes=(*self.notes, *notes))

    def scaled(self, factor: float, *notes: str) -> LatencyResult:
        """A copy with every time multiplied by ``factor`` and ``notes`` appended (a timing
        made in turn with a reference, expressed in that reference's latency elsewhere)."""
        return dataclasses.replace(
            self,
            median_ms=self.median_ms * factor,
            p90_ms=self.p90_ms * factor,
            min_ms=self.min_ms * factor,
            mean_ms=self.mean_ms * factor,
            stdev_ms=self.stdev_ms * factor,
            notes=(*self.notes, *notes),
        )


def summarize(times_ms: list[float], **info: Any) -> LatencyResult:
    """Turns raw per-run times into a :class:`LatencyResult`."""
    ordered = sorted(times_ms)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return LatencyResult(
        median_ms=statistics.median(ordered),
        p90_ms=p90,
        min_ms=ordered[0],
        mean_ms=statistics.fmean(ordered),
        stdev_ms=statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        runs=len(ordered),
        **info,
    )
