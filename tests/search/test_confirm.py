"""The leaders' latency timed again before the product is chosen (real students, real
onnxruntime timing on this machine)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hwcompress.arch import Genome
from hwcompress.measure.latency import measure_local_many
from hwcompress.search import SearchConfig
from hwcompress.search.confirm import confirm_latency, confirmed_latency
from hwcompress.search.evaluate import CandidateEvaluator
from hwcompress.search.latency_memo import LatencyMemo
from hwcompress.search.product import ProductScore, rank
from hwcompress.search.target import Target, with_targets


def test_a_student_is_counted_at_its_slower_sitting_plus_the_gap_between_sittings():
    assert confirmed_latency(1.0, 1.0) == 1.0
    # both sittings under a budget of 1.0, but 0.06 apart: the next may be 0.06 slower again
    assert confirmed_latency(0.96, 0.90) == confirmed_latency(0.90, 0.96)
    assert abs(confirmed_latency(0.90, 0.96) - 1.02) < 1e-12
    assert confirmed_latency(0.5, 2.0) == 3.5


def test_a_leader_over_the_budget_when_timed_again_gives_way_to_the_next(tiny_search):
    from hwcompress.search.runner import prepare_context

    out = Path(tiny_search["out"])
    ctx, _ = prepare_context(SearchConfig(**tiny_search), out)
    ctx.latency_reference = out / "teacher.onnx"
    ctx.latencies = LatencyMemo(out / "latencies.json", {"run": "this"})
    evaluator = CandidateEvaluator(ctx)
    full = evaluator.evaluate(Genome(), stage="shrinkage", episode=0, method="x")
    small = evaluator.evaluate(
        Genome(keep={u.name: False for u in ctx.spec.removable[1:]}),
        stage="removal",
        episode=0,
        method="x",
    )
    assert full.status == small.status == "ok", (full.reason, small.reason)
    # a budget between the two students' latencies, as timed now in turn with the teacher
    times = measure_local_many(
        [ctx.latency_reference, out / full.artifacts["onnx"], out / small.artifacts["onnx"]],
        ctx.profile,
        rounds=30,
    )
    r_full, r_small = (t.median_ms / times[0].median_ms for t in times[1:])
    # far enough apart that the small one meets a budget between them with its gap added
    assert r_small < 0.7 * r_full, (r_small, r_full)
    teacher_ms = float(ctx.teacher_metrics["latency_ms"])
    bound = teacher_ms * (r_small + r_full) / 2
    ctx.matrix = with_targets(ctx.matrix, (Target("latency_ms", value=bound),), {})
    # the full student's first sitting was a lucky one: well under the budget
    first = {c.id: dict(c.metrics) for c in (full, small)}
    full.metrics["latency_ms"] = 0.5 * bound
    full.metrics["val_accuracy"] = 1.0
    small.metrics["latency_ms"] = min(small.metrics["latency_ms"], 0.99 * bound)
    for cand in (full, small):
        evaluator.score(cand)
    assert full.feasible and small.feasible
    score = ProductScore(ctx.teacher_metrics, ctx.teacher_accuracy, "params", "accuracy")
    assert rank([full, small], score)[0] is full

    recorded = []
    done = confirm_latency(
        evaluator,
        score.eligible,
        lambda: rank(list(evaluator.cache.values()), score),
        leaders=1,
        record=recorded.append,
    )
    again = {c.id: c for c in done}
    assert [c.id for c in recorded] == [c.id for c in done] == [full.id, small.id]
    # the full student keeps the slower measurement and is no longer feasible; the next one
    # was timed in its place and still meets the budget
    assert not again[full.id].feasible
    assert again[full.id].metrics["latency_ms"] > bound
    assert again[full.id].metrics["latency_first_ms"] == 0.5 * bound
    ratio = again[full.id].metrics["latency_confirmed_ratio"]
    assert again[full.id].metrics["latency_ms"] == confirmed_latency(
        0.5 * bound, ratio * teacher_ms
    )
    assert again[small.id].feasible
    assert again[small.id].metrics["latency_ms"] <= bound
    assert rank(list(evaluator.cache.values()), score)[0].id == small.id
    # confirmed students are not timed again
    assert (
        confirm_latency(
            evaluator,
            score.eligible,
            lambda: rank(list(evaluator.cache.values()), score),
            leaders=1,
            record=recorded.append,
        )
        == []
    )

    # the second timings are kept: a run handed them (a resumed one, or the other run of a
    # benchmark's pair) counts its leaders at them without a new sitting (the teacher's file
    # is gone, so a sitting would fail)
    ctx.latency_reference = out / "gone.onnx"
    ctx.latencies = LatencyMemo(out / "latencies.json", {"run": "this"})
    other = CandidateEvaluator(ctx)
    for cand in (full, small):
        fresh = replace(cand, metrics=dict(first[cand.id]), history=list(cand.history))
        if cand is full:
            fresh.metrics["latency_ms"] = 0.5 * bound
        other.score(fresh)
        other.cache[Genome.from_dict(cand.genome).key()] = fresh
    messages: list[str] = []
    done = confirm_latency(
        other,
        score.eligible,
        lambda: rank(list(other.cache.values()), score),
        leaders=1,
        record=lambda c: None,
        progress=messages.append,
    )
    assert [c.id for c in done] == [full.id, small.id] and not messages
    for cand in done:
        assert cand.metrics["latency_ms"] == again[cand.id].metrics["latency_ms"]
        assert cand.feasible == again[cand.id].feasible
