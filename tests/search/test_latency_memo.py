"""Kept timings by student structure (``latencies.json``)."""

from __future__ import annotations

import json

import pytest

from hwcompress.measure.result import LatencyResult
from hwcompress.search.latency_memo import LatencyMemo

CONTEXT = {"profile": "x86_host", "teacher": "abc", "input_shape": [1, 8, 8]}


def _timing(ms: float) -> LatencyResult:
    return LatencyResult(
        median_ms=ms,
        p90_ms=1.2 * ms,
        min_ms=0.9 * ms,
        mean_ms=ms,
        stdev_ms=0.1 * ms,
        runs=20,
        source="local",
        kernels={"Conv": 2},
    )


def test_the_first_timing_of_a_structure_is_kept_and_read_back_scaled(tmp_path):
    memo = LatencyMemo(tmp_path / "latencies.json", CONTEXT)
    calls = []

    def measure(ms: float, ratio: float):
        def timed():
            calls.append(ms)
            return _timing(ms), ratio

        return timed

    lat, ratio = memo.measured("a", 2.0, measure(0.5, 0.25))
    assert (lat.median_ms, ratio) == (0.5, 0.25)
    # a second timing of the same structure is not made; the first is read, as the ratio
    # to the teacher times this run's teacher latency
    lat, ratio = memo.measured("a", 4.0, measure(0.9, 0.3))
    assert calls == [0.5]
    assert ratio == 0.25
    assert lat.median_ms == pytest.approx(1.0)
    assert lat.p90_ms == pytest.approx(1.2)
    assert lat.kernels == {"Conv": 2}
    # another structure is timed
    memo.measured("b", 2.0, measure(0.7, 0.35))
    assert calls == [0.5, 0.7]
    # the file holds them for a resumed run or the other run of a pair
    again = LatencyMemo(tmp_path / "latencies.json", CONTEXT)
    assert not again.ignored and len(again) == 2 and "b" in again
    assert again.get("a", 2.0)[1] == 0.25


def test_a_second_timing_is_kept_apart_from_the_first(tmp_path):
    memo = LatencyMemo(tmp_path / "latencies.json", CONTEXT)
    memo.put("a", _timing(0.5), 0.25)
    assert memo.again("a") is None
    memo.put_again("a", 0.3)
    memo.put_again("a", 0.4)  # the first is kept
    again = LatencyMemo(tmp_path / "latencies.json", CONTEXT)
    assert again.again("a") == 0.3 and again.get("a", 2.0)[1] == 0.25


def test_a_timing_without_a_teacher_ratio_is_read_as_measured(tmp_path):
    memo = LatencyMemo(tmp_path / "latencies.json", CONTEXT)
    memo.put("a", _timing(0.5), None)
    lat, ratio = LatencyMemo(tmp_path / "latencies.json", CONTEXT).get("a", 9.0)
    assert ratio is None and lat.median_ms == 0.5


def test_timings_for_another_teacher_or_an_unreadable_file_are_not_read(tmp_path):
    path = tmp_path / "latencies.json"
    LatencyMemo(path, CONTEXT).put("a", _timing(0.5), 0.25)
    other = LatencyMemo(path, {**CONTEXT, "teacher": "def"})
    assert len(other) == 0 and "another profile or teacher" in other.ignored
    assert other.get("a", 2.0) is None
    for text in ("{not json", json.dumps({"version": 1, "context": CONTEXT, "entries": []})):
        path.write_text(text)
        broken = LatencyMemo(path, CONTEXT)
        assert len(broken) == 0 and "unreadable" in broken.ignored
    entry = {"result": {"median_ms": "x"}, "ratio": 0.2}
    path.write_text(json.dumps({"version": 1, "context": CONTEXT, "entries": {"a": entry}}))
    assert "unreadable" in LatencyMemo(path, CONTEXT).ignored
    # a new timing replaces the unreadable file
    broken = LatencyMemo(path, CONTEXT)
    broken.put("b", _timing(0.4), 0.2)
    assert len(LatencyMemo(path, CONTEXT)) == 1
