"""A calibrated per-layer latency table: fast, offline latency predictions for the search.

``hwcompress calibrate`` cuts ONNX models into *layers* — one compute op (Conv, Gemm, MatMul,
a pool, an add) with the light ops that follow it alone (batch-norm, activation, pooling,
flatten), which is also what onnxruntime fuses — and measures each distinct layer
configuration on its own, as a one-layer ONNX model, with the real source (the board's
benchmark server when the profile names one, else this machine). The table stores, per layer
configuration, its latency minus the fixed cost of one ``session.run``.

A model's predicted latency is that fixed cost plus the sum of its layers' entries. A layer
configuration that is not in the table is predicted by a least-squares fit
``ms ≈ a + b·MACs + c·elements`` over the entries of the same op sequence (or over all
entries when its kind has fewer than three); the result's notes say how many were fitted.

Tables also hold a fit of *whole-model* latencies on the kernels onnxruntime really runs
(:mod:`hwcompress.measure.kernels`: blocked vs generic convolutions, layout reorders, padded
channels, output sizes), chosen over the layer sums when it predicts held-out models
better, since one-layer measurements miss what the whole graph's optimisation does. The
whole models (the fit's and the check's) are timed in turn, round after round, so the
machine's drift between minutes hits them all alike.

Building a table is :mod:`hwcompress.measure.calibrate`; cutting models into layers is
:mod:`hwcompress.measure.layers`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwcompress.errors import LatencyError
from hwcompress.hardware.sections import SourceName
from hwcompress.measure.kernels import KernelFit
from hwcompress.measure.layers import Layer, layers_of

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile
    from hwcompress.measure.result import LatencyResult

__all__ = ["LatencyTable", "load_table", "predict_latency"]

TABLE_FORMAT = 2
#: Formats that still load; a format-1 table's kernel-level fit used other features and is
#: dropped (its layer sums predict).
READABLE_FORMATS = (1, 2)


@dataclass
class LatencyTable:
    """Per-layer latencies of one device.

    Attributes:
        base_ms: The fixed cost of one ``session.run``.
        entries: Per layer key: ``{"ms", "kind", "macs", "elements"}``.
        meta: Where and how it was calibrated (profile, source, onnxruntime, check result).
        kernels: The kernel-level fit of whole-model latencies (``None``: the layer sums
            predict).
    """

    base_ms: float
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    kernels: KernelFit | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the JSON file)."""
        return {
            "format": TABLE_FORMAT,
            "base_ms": self.base_ms,
            "meta": self.meta,
            "entries": self.entries,
            **({"kernels": self.kernels.to_dict()} if self.kernels else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Writes the table as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Reads a table written by :meth:`save`.

        Raises:
            LatencyError: If the file is missing or not a latency table.
        """
        path = Path(path)
        if not path.is_file():
            raise LatencyError(
                f"{path}: no latency table; run 'hwcompress calibrate --profile ...' first "
                "(or set latency.table in the profile to the file)"
            )
        try:
            data = json.loads(path.read_text())
            if data.get("format") not in READABLE_FORMATS:
                raise ValueError(f"format {data.get('format')!r}, expected {TABLE_FORMAT}")
            kernels = data.get("kernels") if data["format"] == TABLE_FORMAT else None
            if data.get("kernels") and not kernels:
                meta = data.setdefault("meta", {})
                meta["note"] = (
                    "calibrated by an older hwcompress: its kernel-level fit is not used "
                    "(run 'hwcompress calibrate' again to get one)"
                )
            table = cls(
                float(data["base_ms"]),
                dict(data["entries"]),
                dict(data.get("meta", {})),
                KernelFit.from_dict(kernels) if kernels else None,
            )
            for entry in table.entries.values():
                float(entry["ms"]), int(entry["macs"]), int(entry["elements"]), str(entry["kind"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise LatencyError(
                f"{path}: not a latency table ({err}); run 'hwcompress calibrate' again"
            ) from None
        return table

    def _fit(self, kind: str | None) -> Callable[[int, int], float] | None:
        import numpy as np

        rows = [e for e in self.entries.values() if kind is None or e["kind"] == kind]
        if len(rows) < 3:
            return None
        a = np.array([[1.0, e["macs"] / 1e6, e["elements"] / 1e4] for e in rows])
        b = np.array([e["ms"] for e in rows])
        coef, *_ = np.linalg.lstsq(a, b, rcond=None)
        return lambda macs, elements: float(coef @ np.array([1.0, macs / 1e6, elements / 1e4]))

    def predict(self, layers: Sequence[Layer]) -> tuple[float, int]:
        """Predicted milliseconds of a model made of ``layers``, and how many were fitted.

        Raises:
            LatencyError: If the table is empty.
        """
        total, fitted = self.layer_sum(layers)
        return self.base_ms + total, fitted

    def layer_sum(self, layers: Sequence[Layer]) -> tuple[float, int]:
        """The sum of the layers' entries (fitted where missing), and how many were fitted.

        Raises:
            LatencyError: If the table is empty.
        """
        if not self.entries:
            raise LatencyError("the latency table is empty; run 'hwcompress calibrate' again")
        total, fitted = 0.0, 0
        fits: dict[str | None, Callable[[int, int], float] | None] = {}
        for layer in layers:
            entry = self.entries.get(layer.key)
            if entry is not None:
                total += entry["ms"]
                continue
            fitted += 1
            for kind in (layer.kind, None):
                if kind not in fits:
                    fits[kind] = self._fit(kind)
                if fits[kind] is not None:
                    total += max(0.0, fits[kind](layer.macs, layer.elements))  # type: ignore[misc]
                    break
            else:
                total += sum(e["ms"] for e in self.entries.values()) / len(self.entries)
        return total, fitted


_LOADED: dict[str, tuple[float, LatencyTable]] = {}


def load_table(path: Path) -> LatencyTable:
    """Loads a table, reusing the parsed copy while the file is unchanged."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    hit = _LOADED.get(str(path))
    if hit is None or hit[0] != mtime:
        hit = (mtime, LatencyTable.load(path))
        _LOADED[str(path)] = hit
    return hit[1]


def predict_latency(onnx_path: str | Path, profile: DeviceProfile) -> LatencyResult:
    """The ``table`` latency source: predicts ``onnx_path``'s latency from the profile's table.

    Raises:
        LatencyError: If there is no table.
        ModelError: If the model cannot be read.
    """
    from hwcompress.measure.onnx_graph import load_onnx
    from hwcompress.measure.result import LatencyResult

    path = profile.latency_table_path()
    table = load_table(path)
    if table.kernels:
        from hwcompress.measure.kernels import kernel_features

        ms, unseen = table.kernels.predict(kernel_features(onnx_path, profile))
        note = f"predicted from the kernel-level fit of the latency table {path}"
        note += f" ({unseen} kernel features it was not calibrated on)" if unseen else ""
    else:
        _, layers = layers_of(load_onnx(onnx_path))
        ms, fitted = table.predict(layers)
        note = f"predicted from the latency table {path} ({len(layers) - fitted}/{len(layers)} "
        note += "layers looked up" + (f", {fitted} fitted)" if fitted else ")")
        if table.meta.get("note"):
            note += f"; {table.meta['note']}"
    return LatencyResult.estimate(
        ms,
        SourceName.TABLE,
        note,
        provider=str(table.meta.get("provider", "")),
        threads=int(table.meta.get("threads", 0)),
    )
