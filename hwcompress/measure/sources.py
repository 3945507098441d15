"""Registry of latency sources: where a profile's latency figure comes from.

``local`` runs onnxruntime on this machine; ``remote`` sends the model to a benchmark server
on the board (``hwcompress serve``); ``table`` predicts from a per-layer table calibrated on
the board (``hwcompress calibrate``); ``roofline`` estimates from the profile's peak compute
and bandwidth (for devices that cannot run onnxruntime, such as an MCU). Others register
themselves with :func:`register_latency_source`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwcompress.hardware.sections import LATENCY_SOURCE_NAMES, SourceName
from hwcompress.measure.provenance import (
    CPU_PROVIDERS,
    host_description,
    real_source,
    with_provenance,
)

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile
    from hwcompress.measure.result import LatencyResult

__all__ = [
    "CPU_PROVIDERS",
    "LATENCY_SOURCES",
    "host_description",
    "measure_latency",
    "measure_with",
    "real_source",
    "register_latency_source",
    "with_provenance",
]

LatencySource = Callable[..., "LatencyResult"]
LATENCY_SOURCES: dict[str, LatencySource] = {}


def register_latency_source(name: str) -> Callable[[LatencySource], LatencySource]:
    """Decorator adding a latency source under ``name``."""

    def wrap(fn: LatencySource) -> LatencySource:
        LATENCY_SOURCES[name] = fn
        LATENCY_SOURCE_NAMES.add(name)  # profiles may name it from now on
        return fn

    return wrap


@register_latency_source(SourceName.LOCAL)
def _local(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.latency import measure_local

    return measure_local(onnx_path, profile, **kwargs)


@register_latency_source(SourceName.ROOFLINE)
def _roofline(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.onnx_graph import analyze_onnx
    from hwcompress.measure.result import LatencyResult
    from hwcompress.measure.roofline import roofline

    stats = analyze_onnx(onnx_path)
    precision = stats.precision  # the model's own, as bench's floor uses: they cannot disagree
    est = roofline(stats, profile, precision)
    ms = est.floor_ms
    return LatencyResult.estimate(
        ms,
        SourceName.ROOFLINE,
        f"estimated from the {precision} roofline ({est.bound}-bound, "
        f"efficiency {profile.latency.roofline_efficiency:g}); not measured",
    )


@register_latency_source(SourceName.REMOTE)
def _remote(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.remote import measure_remote

    return measure_remote(onnx_path, profile, **kwargs)


@register_latency_source(SourceName.TABLE)
def _table(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.table import predict_latency

    return predict_latency(onnx_path, profile)


def measure_with(source: str, onnx_path: str | Path, profile: DeviceProfile, **kwargs: Any):
    """Measures with a named source instead of the profile's own (e.g. a real measurement of
    a candidate whose search used the ``table`` source)."""
    return with_provenance(LATENCY_SOURCES[source](Path(onnx_path), profile, **kwargs), profile)


def measure_latency(onnx_path: str | Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    """Measures (or estimates) the latency of ``onnx_path`` with the profile's source.

    Args:
        onnx_path: The ONNX model.
        profile: The device profile; ``profile.latency.source`` picks the source.
        **kwargs: Passed to the source (``runs``, ``warmup``, ``min_time_s`` for ``local``).

    Returns:
        The latency statistics with the kernels that ran, where the source can tell.
    """
    result = LATENCY_SOURCES[profile.latency.source](Path(onnx_path), profile, **kwargs)
    return with_provenance(result, profile)
