"""Roofline floor: the fastest a model could possibly run on a device.

``floor = max(2·MACs / peak_ops, bytes_moved / bandwidth) / efficiency`` where bytes moved are
the weights plus every activation written and read once. It is a lower bound, useful where
no runtime can be measured (an MCU, an Edge TPU) and as a sanity check next to measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwcompress.hardware.profile import DeviceProfile
from hwcompress.measure.counting import precision_for_bits
from hwcompress.measure.stats import ModelStats

__all__ = ["Roofline", "precision_for_bits", "roofline"]


@dataclass(frozen=True)
class Roofline:
    """The roofline estimate of one model on one device."""

    precision: str
    compute_ms: float
    memory_ms: float
    floor_ms: float
    bound: str


def roofline(stats: ModelStats, profile: DeviceProfile, precision: str = "fp32") -> Roofline:
    """Computes the roofline floor of ``stats`` on ``profile``.

    Args:
        stats: Static metrics of the model.
        profile: The device (peak compute, bandwidth, efficiency).
        precision: The compute precision (``fp32``, ``fp16``, ``int8``, ...); a precision the
            profile gives no figure for falls back to its float figure.

    Returns:
        The compute time, memory time and the floor, in milliseconds.
    """
    eff = profile.latency.roofline_efficiency
    compute_s = 2.0 * stats.macs / profile.peak_ops_per_s(precision)
    moved = stats.weight_bytes + stats.activation_traffic_bytes
    memory_s = moved / (profile.memory.bandwidth_gbps * 1e9)
    floor_s = max(compute_s, memory_s) / eff
    return Roofline(
        precision=precision,
        compute_ms=compute_s * 1e3 / eff,
        memory_ms=memory_s * 1e3 / eff,
        floor_ms=floor_s * 1e3,
        bound="compute" if compute_s >= memory_s else "memory",
    )
