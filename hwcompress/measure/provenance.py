"""Where a latency figure came from, in words, and the two sources that really measure.

The source registry (:mod:`hwcompress.measure.sources`) and calibration
(:mod:`hwcompress.measure.calibrate`) both use these; neither imports the other's module for
them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwcompress.hardware.sections import SourceName

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile
    from hwcompress.measure.result import LatencyResult

__all__ = ["CPU_PROVIDERS", "host_description", "measure_real", "real_source", "with_provenance"]


def real_source(profile: DeviceProfile) -> str:
    """The source that really measures for this profile: ``remote`` when it names a
    benchmark server, else ``local``."""
    return SourceName.REMOTE if profile.latency.url else SourceName.LOCAL


def measure_real(
    source: str, onnx_path: str | Path, profile: DeviceProfile, **kwargs: Any
) -> LatencyResult:
    """Measures with a source that really runs the model: ``local`` (onnxruntime here) or
    ``remote`` (the board's benchmark server), labelled with where it ran."""
    if source == SourceName.REMOTE:
        from hwcompress.measure.remote import measure_remote

        result = measure_remote(Path(onnx_path), profile, **kwargs)
    elif source == SourceName.LOCAL:
        from hwcompress.measure.latency import measure_local

        result = measure_local(Path(onnx_path), profile, **kwargs)
    else:
        raise ValueError(f"{source!r} does not measure; use local or remote")
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
    if source == SourceName.LOCAL:
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
    elif source == SourceName.REMOTE:
        where = f"the board at {profile.latency.url}{' (' + run + ')' if run else ''}"
    elif source == SourceName.TABLE:
        where = f"predicted from the table {profile.latency_table_path()} (not measured)"
    elif source == SourceName.ROOFLINE:
        where = "estimated from the profile's roofline (peak compute and bandwidth; not measured)"
    else:
        where = f"the {source} source"
    return dataclasses.replace(result, where=where, warning=warning)
