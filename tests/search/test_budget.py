"""Sharing a time budget among stages."""

from __future__ import annotations

import time

import pytest

from hwcompress.search.budget import StageClock


def test_each_stage_gets_its_share_of_the_time_left():
    start = time.perf_counter()
    clock = StageClock(90.0, {"removal": 1, "shrinkage": 1, "quantization": 1}, start=start)
    assert clock.plan() == pytest.approx({"removal": 30, "shrinkage": 30, "quantization": 30})
    first = clock.deadline("removal")
    assert first is not None and first - start == pytest.approx(30, abs=0.5)
    # the last stage gets everything left, whatever the earlier ones used
    last = clock.deadline("quantization")
    assert last == pytest.approx(start + 90, abs=0.5)
    assert not clock.spent()


def test_time_an_early_stage_leaves_goes_to_the_later_ones():
    # 100 s, weights 2:1:1; 10 s later (removal done early) shrinkage gets half of 90 s
    clock = StageClock(100.0, {"a": 2, "b": 1, "c": 1}, start=time.perf_counter() - 10)
    b = clock.deadline("b")
    assert b is not None and b - time.perf_counter() == pytest.approx(45, abs=0.5)


def test_no_budget_no_deadlines():
    clock = StageClock(None, {"a": 1})
    assert clock.deadline("a") is None and clock.plan() == {} and not clock.spent()
    spent = StageClock(1.0, {"a": 1}, start=time.perf_counter() - 5)
    assert spent.spent()
