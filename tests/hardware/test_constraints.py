from __future__ import annotations

import numpy as np
import pytest

from hwcompress.errors import ConstraintError
from hwcompress.hardware import METRICS, ConstraintMatrix, load_profile


def test_rows_from_budgets_and_extra_rows():
    m = ConstraintMatrix.from_profile(load_profile("jetson_nano"))
    assert m.metrics == METRICS
    assert m.rows == (
        "weights_fit_storage",
        "activations_fit_memory",
        "latency_budget",
        "bit_widths_supported",
        "model_ram",
    )
    assert m.A.shape == (5, len(METRICS))
    ram = m.rows.index("model_ram")
    assert m.A[ram, METRICS.index("weight_bytes")] == 1
    assert m.A[ram, METRICS.index("peak_activation_bytes")] == 1
    assert m.b[m.rows.index("latency_budget")] == 33


def test_slack_feasible_and_penalty_by_hand(profile_data, write_profile):
    profile_data["budgets"] = {"weight_bytes": 1000, "peak_activation_bytes": 500, "macs": 2000}
    profile_data["latency"]["budget_ms"] = 10
    profile_data["constraints"] = [
        {"name": "mixed", "coeffs": {"macs": 0.001, "latency_ms": 1}, "bound": 12}
    ]
    m = ConstraintMatrix.from_profile(load_profile(write_profile(profile_data)))
    ok = {
        "params": 1,
        "weight_bytes": 900,
        "peak_activation_bytes": 400,
        "macs": 1000,
        "latency_ms": 5,
        "unsupported_bits": 0,
    }
    assert m.feasible(ok)
    np.testing.assert_allclose(m.slack(ok), [100, 100, 5, 0, 1000, 6])
    assert m.penalty(ok) == 0
    bad = {**ok, "weight_bytes": 1500, "latency_ms": 15}
    assert not m.feasible(bad)
    # weight 50% over, latency 50% over, mixed row 1 + 15 = 16 vs 12 → 1/3 over.
    np.testing.assert_allclose(m.violations(bad), [0.5, 0, 0.5, 0, 0, 4 / 12])
    assert m.penalty(bad) == pytest.approx(1 + 1 / 3)
    report = {r["name"]: r for r in m.report(bad)}
    assert report["latency_budget"]["ok"] is False
    assert report["latency_budget"]["metric"] == "latency_ms"
    assert report["mixed"]["metric"] is None


def test_missing_metric_is_an_error():
    m = ConstraintMatrix.from_profile(load_profile("x86_host"))
    with pytest.raises(ConstraintError, match="latency_ms"):
        m.slack({"weight_bytes": 1, "peak_activation_bytes": 1})


def test_bit_widths_the_device_lacks_violate():
    mcu = ConstraintMatrix.from_profile(load_profile("stm32h7"))
    fits = {"weight_bytes": 1, "peak_activation_bytes": 1, "latency_ms": 1, "unsupported_bits": 0}
    assert mcu.feasible(fits)
    row = {r["name"]: r for r in mcu.report({**fits, "unsupported_bits": 3})}
    assert row["bit_widths_supported"]["ok"] is False
    assert "8/4" in row["bit_widths_supported"]["description"]
    bits = load_profile("stm32h7").bits
    assert bits.unsupported([32, 8, 4], [32, 8, 8]) == 1  # the fp32 layer only
    assert bits.unsupported([8, 2], [8, 8]) == 1  # no 2-bit kernels
    assert not bits.runs_float and load_profile("x86_host").bits.runs_float
