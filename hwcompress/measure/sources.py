"""Registry of latency sources: where a profile's latency figure comes from.

``local`` runs onnxruntime on this machine; ``remote`` sends the model to a benchmark server
on the board (``hwcompress serve``); ``table`` predicts from a per-layer table calibrated on
the board (``hwcompress calibrate``); ``roofline`` estimates from the profile's peak compute
and bandwidth (for devices that cannot run onnxruntime, such as an MCU). Others register
themselves with :func:`register_latency_source`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwcompress.hardware.profile import LATENCY_SOURCE_NAMES

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile
    from hwcompress.measure.latency import LatencyResult

LatencySource = Callable[..., "LatencyResult"]
LATENCY_SOURCES: dict[str, LatencySource] = {}


def register_latency_source(name: str) -> Callable[[LatencySource], LatencySource]:
    """Decorator adding a latency source under ``name``."""

    def wrap(fn: LatencySource) -> LatencySource:
        LATENCY_SOURCES[name] = fn
        LATENCY_SOURCE_NAMES.add(name)  # profiles may name it from now on
        return fn

    return wrap


@register_latency_source("local")
def _local(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.latency import measure_local

    return measure_local(onnx_path, profile, **kwargs)


@register_latency_source("roofline")
def _roofline(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.latency import LatencyResult
    from hwcompress.measure.onnx_graph import analyze_onnx
    from hwcompress.measure.roofline import roofline

    stats = analyze_onnx(onnx_path)
    precision = stats.precision  # the model's own, as bench's floor uses: they cannot disagree
    est = roofline(stats, profile, precision)
    ms = est.floor_ms
    return LatencyResult.estimate(
        ms,
        "roofline",
        f"estimated from the {precision} roofline ({est.bound}-bound, "
        f"efficiency {profile.latency.roofline_efficiency:g}); not measured",
    )


@register_latency_source("remote")
def _remote(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.remote import measure_remote

    return measure_remote(onnx_path, profile, **kwargs)


@register_latency_source("table")
def _table(onnx_path: Path, profile: DeviceProfile, **kwargs: Any) -> LatencyResult:
    from hwcompress.measure.table import predict_latency

    return predict_latency(onnx_path, profile)


def measure_with(source: str, onnx_path: str | Path, profile: DeviceProfile, **kwargs: Any):
    """Measures with a named source instead of the profile's own (e.g. a real measurement of
    a candidate whose search used the ``table`` source)."""
    return with_provenance(LATENCY_SOURCES[source](Path(onnx_path), profile, **kwargs), profile)


def real_source(profile: DeviceProfile) -> str:
    """The source that really measures for this profile: ``remote`` when it names a
    benchmark server, else ``local``."""
    return "remote" if profile.latency.url else "local"


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


#: Execution providers that run on the CPU: falling back from one to another still measures
#: the board's CPU, so only a fallback from an accelerator's provider is warned about.
CPU_PROVIDERS = frozenset(
    {"CPUExecutionProvider", "XnnpackExecutionProvider", "DnnlExecutionProvider"}
)


@functools.cache
def host_description() -> str:
    """This machine in a few words: its architecture and CPU model."""
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    return ", ".join(x for x in (platform.machine(), cpu) if x)


def with_provenance(result: LatencyResult, profile: DeviceProfile) -> LatencyResult:
    """``result`` labelled with where it came from, and warned about when it was measured on
    this host for a profile whose device this host is not (another machine, or the profile's
    preferred execution provider missing so another one ran)."""
    import dataclasses
    import platform

    run = f"{result.provider}, {result.threads} threads" if result.provider else ""
    source = result.source
    warning = ""
    if source == "local":
        where = f"this host ({host_description()}{'; ' + run if run else ''})"
        machines = profile.runtime.machines
        wanted = profile.runtime.providers[0]
        if machines and platform.machine() not in machines:
            warning = (
                f"latency measured on this host ({platform.machine()}), not on the "
                f"{profile.name} ({'/'.join(machines)}): the figures and the "
                f"{profile.latency.budget_ms:g} ms budget do not describe the device"
            )
        elif result.provider and result.provider != wanted and wanted not in CPU_PROVIDERS:
            warning = (
                f"latency measured with {result.provider}, not the profile's {wanted} "
                f"(not available here): the figures do not describe the {profile.name}"
            )
        if warning:
            warning += (
                "; measure on the board (latency.source: remote with 'hwcompress serve' there) "
                "or use a table calibrated on it"
            )
    elif source == "remote":
        where = f"the board at {profile.latency.url}{' (' + run + ')' if run else ''}"
    elif source == "table":
        where = f"predicted from the table {profile.latency_table_path()} (not measured)"
    elif source == "roofline":
        where = "estimated from the profile's roofline (peak compute and bandwidth; not measured)"
    else:
        where = f"the {source} source"
    return dataclasses.replace(result, where=where, warning=warning)
