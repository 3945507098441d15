"""Measuring models: static counts, roofline floor and real onnxruntime latency.

Submodules are imported lazily so that ``import hwcompress.measure`` stays light.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "analyze_module": "hwcompress.measure.stats",
    "ModelStats": "hwcompress.measure.stats",
    "LayerStats": "hwcompress.measure.stats",
    "analyze_onnx": "hwcompress.measure.onnx_graph",
    "roofline": "hwcompress.measure.roofline",
    "measure_latency": "hwcompress.measure.sources",
    "measure_local": "hwcompress.measure.latency",
    "LatencyResult": "hwcompress.measure.result",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
