"""The constraint matrix ``A·x ≤ b`` built from a device profile.

``x`` is a vector of named metrics of one candidate model (:data:`METRICS`). Each budget of
the profile (weights fit in storage, activations fit in RAM/SRAM, latency under budget, ...)
and each extra row of the profile is one row of ``A``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwcompress.errors import ConstraintError
from hwcompress.hardware.profile import DeviceProfile
from hwcompress.hardware.sections import METRICS

#: The metrics a constraint row may refer to, in the column order of ``A``.


def _unit(metric: str) -> str:
    if metric == "unsupported_bits":
        return "layers"
    return "bytes" if metric.endswith("bytes") else "ms" if metric.endswith("_ms") else "count"


@dataclass(frozen=True, eq=False)
class ConstraintMatrix:
    """Linear constraints over named metrics.

    Attributes:
        metrics: Column names of ``A``.
        rows: Row names (e.g. ``weights_fit_storage``).
        A: Coefficient matrix, shape ``(len(rows), len(metrics))``.
        b: Bounds, shape ``(len(rows),)``.
    """

    metrics: tuple[str, ...]
    rows: tuple[str, ...]
    A: np.ndarray
    b: np.ndarray
    descriptions: tuple[str, ...] = field(default=())

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> ConstraintMatrix:
        """Builds one row per budget of ``profile`` plus its extra rows.

        Args:
            profile: A validated device profile.

        Returns:
            The constraint matrix.
        """
        spec: list[tuple[str, dict[str, float], float, str]] = []
        budgets = profile.budgets
        spec.append(
            (
                "weights_fit_storage",
                {"weight_bytes": 1.0},
                budgets.weight_bytes,
                "weight bytes ≤ weight storage budget",
            )
        )
        spec.append(
            (
                "activations_fit_memory",
                {"peak_activation_bytes": 1.0},
                budgets.peak_activation_bytes,
                "peak activation bytes ≤ activation memory budget",
            )
        )
        spec.append(
            (
                "latency_budget",
                {"latency_ms": 1.0},
                profile.latency.budget_ms,
                f"latency ≤ {profile.latency.budget_ms:g} ms",
            )
        )
        spec.append(
            (
                "bit_widths_supported",
                {"unsupported_bits": 1.0},
                0.0,
                f"no layer at widths the device lacks ({profile.bits.describe()})",
            )
        )
        if budgets.macs is not None:
            spec.append(("macs_budget", {"macs": 1.0}, budgets.macs, "MACs ≤ budget"))
        if budgets.params is not None:
            spec.append(("params_budget", {"params": 1.0}, budgets.params, "params ≤ budget"))
        for row in profile.constraints:
            terms = " + ".join(m if c == 1 else f"{c:g}·{m}" for m, c in row.coeffs.items())
            bound = f"{row.bound:,.0f}" if float(row.bound).is_integer() else f"{row.bound:g}"
            spec.append((row.name, dict(row.coeffs), row.bound, f"{terms} ≤ {bound}"))
        A = np.zeros((len(spec), len(METRICS)))
        for i, (_, coeffs, _, _) in enumerate(spec):
            for metric, coeff in coeffs.items():
                A[i, METRICS.index(metric)] = coeff
        b = np.array([float(bound) for _, _, bound, _ in spec])
        return cls(METRICS, tuple(s[0] for s in spec), A, b, tuple(s[3] for s in spec))

    def vector(self, metrics: Mapping[str, float]) -> np.ndarray:
        """Orders a metric mapping into the column order of ``A``.

        Metrics that no row uses may be missing (they are set to 0).

        Raises:
            ConstraintError: If a metric that some row needs is missing or not finite.
        """
        x = np.zeros(len(self.metrics))
        used = np.any(self.A != 0, axis=0)
        for j, name in enumerate(self.metrics):
            value = metrics.get(name)
            if value is None:
                if used[j]:
                    hint = (
                        "; count it with ModelStats.metrics(profile)"
                        if name == "unsupported_bits"
                        else ""
                    )
                    raise ConstraintError(
                        f"metric '{name}' is needed by a constraint row but was not measured" + hint
                    )
                continue
            if not np.isfinite(value):
                raise ConstraintError(f"metric '{name}' is not finite ({value})")
            x[j] = float(value)
        return x

    def _x(self, x: Mapping[str, float] | np.ndarray) -> np.ndarray:
        return self.vector(x) if isinstance(x, Mapping) else np.asarray(x, dtype=float)

    def slack(self, x: Mapping[str, float] | np.ndarray) -> np.ndarray:
        """Returns ``b − A·x``; a row is satisfied where its slack is ≥ 0."""
        return self.b - self.A @ self._x(x)

    def feasible(self, x: Mapping[str, float] | np.ndarray) -> bool:
        """True if every row holds."""
        return bool(np.all(self.slack(x) >= 0))

    def violations(self, x: Mapping[str, float] | np.ndarray) -> np.ndarray:
        """Per-row relative violation ``max(0, A·x − b) / |b|`` (0 where a row holds)."""
        scale = np.where(self.b != 0, np.abs(self.b), 1.0)
        return np.maximum(0.0, -self.slack(x)) / scale

    def penalty(self, x: Mapping[str, float] | np.ndarray) -> float:
        """The N2N-style constraint penalty: the summed relative violation of all rows.

        It is 0 for a feasible ``x`` and grows linearly with how far each budget is exceeded;
        the reward turns it into the paper's −1 (hard mode) or subtracts a scheduled multiple
        of it (soft mode).
        """
        return float(self.violations(x).sum())

    def row_metric(self, i: int) -> str | None:
        """A metric whose unit row ``i`` is in: its first metric when all the metrics it reads
        share a unit (bytes, milliseconds or counts), else None."""
        (cols,) = np.nonzero(self.A[i])
        names = [self.metrics[c] for c in cols]
        units = {_unit(n) for n in names}
        return names[0] if len(units) == 1 else None

    def report(self, x: Mapping[str, float] | np.ndarray) -> list[dict[str, Any]]:
        """One dict per row: name, description, metric (its unit, or None for mixed rows),
        used value ``A·x``, bound, slack and ok."""
        xv = self._x(x)
        used = self.A @ xv
        slack = self.b - used
        return [
            {
                "name": name,
                "description": desc,
                "metric": self.row_metric(i),
                "value": float(u),
                "bound": float(bnd),
                "slack": float(s),
                "ok": bool(s >= 0),
            }
            for i, (name, desc, u, bnd, s) in enumerate(
                zip(self.rows, self.descriptions or self.rows, used, self.b, slack, strict=True)
            )
        ]

    def activity(self, slacks: list[Mapping[str, float]]) -> list[dict[str, Any]]:
        """Which rows bound over a set of evaluated students, and which never did.

        Args:
            slacks: Each student's slack per row name (``b − A·x``).

        Returns:
            One dict per row: ``name``, ``violated`` (students it rejected), ``tightest``
            (the smallest slack as a share of the bound, None for a zero bound) and
            ``status``: ``binds`` (it rejected a student), ``tight`` (some student came within
            10 % of it) or ``never bound``.
        """
        rows = []
        for name, bound in zip(self.rows, self.b, strict=True):
            values = [float(s[name]) for s in slacks if name in s]
            violated = sum(v < 0 for v in values)
            share = [v / abs(bound) for v in values] if bound else []
            tightest = min(share) if share else None
            status = (
                "binds"
                if violated
                else "tight"
                if tightest is not None and tightest < 0.10
                else "never bound"
            )
            rows.append(
                {"name": name, "violated": violated, "tightest": tightest, "status": status}
            )
        return rows
