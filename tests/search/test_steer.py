"""Where latency steers a run: the latency model read back and the kept timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwcompress.arch import Genome
from hwcompress.search import SearchConfig
from hwcompress.search.latency_model import FILE_NAME, LatencyModel
from hwcompress.search.progress import SearchReporter
from hwcompress.search.setup import prepare_context
from hwcompress.search.steer import latency_model


class _Messages(SearchReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_a_model_read_back_predicts_in_this_runs_milliseconds(tiny_search):
    config = SearchConfig(**{**tiny_search, "target": ("latency_ms=2x",)})
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx, _ = prepare_context(config, out)
    teacher_ms = float(ctx.teacher_metrics["latency_ms"])
    # fitted in another sitting (a resumed run's start, or the other run of a pair), when
    # the teacher measured 50 times slower: it predicts ratios to the teacher, and this
    # run's budget (2x) is in this run's milliseconds
    LatencyModel(coef={"const": 0.25}, scale={}, teacher_ms=50 * teacher_ms).save(out / FILE_NAME)
    reporter = _Messages()
    model = latency_model(ctx, config, out, reporter)
    assert model is not None and model.teacher_ms == teacher_ms
    assert model.predict_ms(ctx.spec, Genome()) == pytest.approx(0.25 * teacher_ms)
    # candidates are timed in turn with the teacher and each structure's timing is kept
    assert ctx.latency_reference == out / "teacher.onnx"
    assert ctx.latencies is not None and ctx.latencies.path == out / "latencies.json"
    # timings kept for another teacher are not read
    ctx.latencies.put("x", _timing(), 0.5)
    ctx.latencies.context = {**ctx.latencies.context, "teacher": "another"}
    ctx.latencies.put("y", _timing(), 0.5)
    latency_model(ctx, config, out, reporter)
    assert "another profile or teacher" in reporter.lines[-1]
    assert len(ctx.latencies) == 0


def _timing():
    from hwcompress.measure.result import LatencyResult

    return LatencyResult(
        median_ms=1.0, p90_ms=1.0, min_ms=1.0, mean_ms=1.0, stdev_ms=0.0, runs=1, source="local"
    )
