"""End-to-end searches on digits with tiny budgets: outputs, resume, baselines, transfer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hwcompress.arch import Genome
from hwcompress.data.teachers import load_checkpoint
from hwcompress.errors import HwCompressError
from hwcompress.hardware.schema import host_channel_block
from hwcompress.measure.stats import analyze_module
from hwcompress.search import SearchConfig, load_search_config, run_search
from hwcompress.search.journal import Journal
from hwcompress.search.target import parse_target


def test_tiny_search_end_to_end(tiny_search):
    result = run_search(SearchConfig(**tiny_search))
    out = Path(tiny_search["out"])
    data = json.loads((out / "results.json").read_text())
    assert {"teacher", "best", "candidates", "stages"} <= data.keys()
    assert len(data["candidates"]) == len(result.candidates) >= 2
    for cand in data["candidates"]:
        assert {"genome", "metrics", "reward", "feasible", "artifacts"} <= cand.keys()
        if cand["status"] == "ok":
            assert (out / cand["artifacts"]["onnx"]).is_file()
            assert cand["metrics"]["latency_ms"] > 0
    best = data["best"]
    # The product is the best feasible student of the whole run by one score (Rc·Ra in
    # parameters), never a later stage's worse one, and the run says why it was chosen.
    t = data["teacher"]

    def score(c):
        c_ = 1 - c["metrics"]["params"] / t["metrics"]["params"]
        return c_ * (2 - c_) * c["metrics"]["val_accuracy"] / t["val_accuracy"]

    feasible = [c for c in data["candidates"] if c["status"] == "ok" and c["feasible"]]
    assert score(best) == pytest.approx(max(score(c) for c in feasible))
    assert all(score(best) >= score(c) for c in data["stages"].values())
    assert best["chosen"]["stage"] == best["stage"] and best["chosen"]["reason"]
    assert best["fidelity"] == 2  # the product's contenders were trained longer
    assert (out / "best" / "student.onnx").is_file()
    meta = load_checkpoint(out / "best" / "student.pt")["meta"]
    assert meta["genome"] == best["genome"]
    assert set(data["stages"]) == {"removal", "shrinkage"}
    assert (out / "config.json").is_file() and (out / "policies" / "final.pt").is_file()
    # seeds (every layer kept, uniform and global-L1 widths) are journaled first
    records = [r["candidate"] for r in Journal(out / "journal.jsonl").records()[:4]]
    assert all(r["method"] == "baseline" and r["episode"] == -1 for r in records)
    assert {r["label"] for r in records} == {"uniform 4x", "uniform 16x", "l1 4x", "l1 16x"}
    assert all(not any(v is False for v in r["genome"]["keep"].values()) for r in records)
    # shrinkage starts from the run's best structures (removal judged after shrinking)
    removal = [c for c in data["candidates"] if c["stage"] == "removal" and c["feasible"]]
    structures = {
        json.dumps({k: v for k, v in c["genome"]["keep"].items() if not v}) for c in removal
    }
    shrink = [c for c in data["candidates"] if c["stage"] == "shrinkage"]
    for c in shrink:
        assert json.dumps({k: v for k, v in c["genome"]["keep"].items() if not v}) in structures
    # ... and each carried structure with removals is first narrowed to the ladder's sizes
    # beyond its own (seeds), so a removal is also judged at the sizes the run may end at
    narrowed = [c for c in shrink if c["method"] == "baseline"]
    assert narrowed
    for c in narrowed:
        removed = sum(1 for v in c["genome"]["keep"].values() if not v)
        assert removed and c["label"].startswith(f"{removed} removed, uniform ")
        full = next(
            r
            for r in data["candidates"]
            if r["genome"]["keep"] == c["genome"]["keep"] and not r["genome"]["width"]
        )
        assert c["metrics"]["params"] < full["metrics"]["params"]


def test_a_spent_budget_bounds_the_product_phase(tiny_search, monkeypatch):
    # The stages run as usual; once they are done the budget counts as spent, so the product
    # phase refines its first planned student only and says which refinements it skipped.
    from hwcompress.search.runner import SearchRun

    run_stages = SearchRun.run_stages

    def then_spent(self):
        cut = run_stages(self)
        monkeypatch.setattr(self.clock, "spent", lambda: True)
        return cut

    monkeypatch.setattr(SearchRun, "run_stages", then_spent)
    run_search(SearchConfig(**{**tiny_search, "contenders": 2, "budget_minutes": 600}))
    out = Path(tiny_search["out"])
    records = Journal(out / "journal.jsonl").records()
    first_plan = min(i for i, r in enumerate(records) if r["type"] == "product_plan")
    plans = [r for r in records if r["type"] == "product_plan"]
    refined = [r for r in records[first_plan:] if r["type"] == "candidate"]
    chosen = json.loads((out / "results.json").read_text())["best"]["chosen"]
    planned = {i for r in plans for i in r["ids"]}
    assert len(refined) == 1 and refined[0]["candidate"]["fidelity"] == 2
    skipped = chosen["skipped_refinements"]
    assert skipped and set(skipped) <= planned and len(set(skipped)) == len(skipped)
    assert "time budget was spent" in chosen["reason"]


def test_promotions_that_would_overrun_a_stage_are_left_to_the_product_phase(
    tiny_search, monkeypatch
):
    # Every stage's deadline is now: its seeds are evaluated at the proxy fidelity, but no
    # promotion fits before the deadline, so none runs inside a stage; the product phase
    # still trains its contenders to the top fidelity.
    from hwcompress.search.budget import StageClock

    monkeypatch.setattr(StageClock, "deadline", lambda self, stage: time.perf_counter())
    run_search(SearchConfig(**{**tiny_search, "budget_minutes": 600}))
    out = Path(tiny_search["out"])
    records = Journal(out / "journal.jsonl").records()
    first_plan = min(i for i, r in enumerate(records) if r["type"] == "product_plan")
    inside = [r["candidate"] for r in records[:first_plan] if r["type"] == "candidate"]
    assert inside and all(c["fidelity"] == 1 for c in inside)
    best = json.loads((out / "results.json").read_text())["best"]
    assert best["fidelity"] == 2


def test_a_smaller_challenger_is_trained_to_the_top_fidelity_before_the_choice(tiny_search):
    # One leader and one challenger: a student short of the top fidelity that would outscore
    # the leader if it matched the teacher's accuracy is refined after the last episode.
    run_search(SearchConfig(**{**tiny_search, "contenders": 1}))
    out = Path(tiny_search["out"])
    records = Journal(out / "journal.jsonl").records()
    last_episode = max(i for i, r in enumerate(records) if r["type"] == "episode")
    after = [r["candidate"] for r in records[last_episode + 1 :] if r["type"] == "candidate"]
    data = json.loads((out / "results.json").read_text())
    t = data["teacher"]

    def rc(c):
        c_ = 1 - c["metrics"]["params"] / t["metrics"]["params"]
        return c_ * (2 - c_)

    best = data["best"]
    product = rc(best) * best["metrics"]["val_accuracy"] / t["val_accuracy"]
    assert after and all(c["fidelity"] == 2 for c in after)
    assert any(rc(c) >= product - 1e-9 and c["feasible"] for c in after)


def test_same_seed_same_genomes(tiny_search, tmp_path):
    a = run_search(SearchConfig(**tiny_search))
    b = run_search(SearchConfig(**{**tiny_search, "out": str(tmp_path / "again")}))
    assert [c.genome for c in a.candidates] == [c.genome for c in b.candidates]


def test_existing_run_needs_resume_and_resume_refuses_changes(tiny_search):
    run_search(SearchConfig(**tiny_search))
    with pytest.raises(HwCompressError, match="pass resume to continue"):
        run_search(SearchConfig(**tiny_search))
    with pytest.raises(HwCompressError, match="episodes"):
        load_search_config(tiny_search["out"], {"episodes": 5})


def test_resume_after_kill_loses_and_repeats_nothing(tiny_search, tmp_path):
    settings = {**tiny_search, "episodes": 3}
    reference = run_search(SearchConfig(**{**settings, "out": str(tmp_path / "ref")}))
    out = Path(settings["out"])
    code = (
        "import sys, json; from hwcompress.search import SearchConfig, run_search; "
        "run_search(SearchConfig(**json.loads(sys.argv[1])))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(settings)], env=os.environ.copy()
    )
    journal = Journal(out / "journal.jsonl")
    deadline = time.time() + 240
    while time.time() < deadline and len(journal.candidates()) < 3 and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = journal.candidates()
    assert 3 <= len(before) < len(reference.candidates)
    resumed = run_search(load_search_config(out, {}), resume=True)
    after = journal.candidates()
    ids = [(c.id, c.fidelity) for c in after]
    assert len(ids) == len(set(ids)), "a candidate was evaluated twice"
    assert [c.id for c in after[: len(before)]] == [c.id for c in before]
    assert sorted(c.id for c in resumed.candidates) == sorted(c.id for c in reference.candidates)


def test_random_baseline_and_policy_transfer(tiny_search, tmp_path):
    random_run = run_search(SearchConfig(**{**tiny_search, "method": "random"}))
    assert random_run.best is not None
    assert {c.method for c in random_run.candidates} == {"random", "baseline"}
    source = run_search(SearchConfig(**{**tiny_search, "out": str(tmp_path / "src")}))
    final = source.out / "policies" / "final.pt"
    state = torch.load(final, weights_only=True)
    assert set(state) == {"removal", "shrinkage"}
    # A policy trained on the VGG teacher starts a search on the ResNet teacher.
    transfer = run_search(
        SearchConfig(
            **{
                **tiny_search,
                "teacher": "builtin:resnet",
                "init_policy": str(final),
                "out": str(tmp_path / "transfer"),
            }
        )
    )
    assert transfer.best is not None


def test_unbuildable_genome_is_recorded_not_raised(tiny_search):
    from hwcompress.search.evaluate import CandidateEvaluator
    from hwcompress.search.runner import prepare_context

    ctx, _ = prepare_context(SearchConfig(**tiny_search), Path(tiny_search["out"]))
    cand = CandidateEvaluator(ctx).evaluate(
        Genome(keep={"no.such.unit": False}), stage="removal", episode=0, method="n2n"
    )
    assert cand.status == "failed" and cand.reward == -1
    assert "not a removable unit" in cand.reason


def test_quantization_stage_ships_an_integer_student(tiny_search):
    from hwcompress.data.teachers import load_checkpoint as load

    result = run_search(
        SearchConfig(
            **{
                **tiny_search,
                "rollouts": 2,
                "episodes": 1,
                "stages": ("removal", "shrinkage", "quantization"),
            }
        )
    )
    quant = [c for c in result.candidates if c.stage == "quantization"]
    assert quant and all(c.status == "ok" for c in quant), [c.reason for c in quant]
    # it quantizes one of the run's float students (its best when the stage started)
    structure = {k: quant[0].genome[k] for k in ("keep", "width", "kernel")}
    (float_best,) = [
        c
        for c in result.candidates
        if not c.genome["weight_bits"] and {k: c.genome[k] for k in structure} == structure
    ]
    seeds = [c for c in quant if c.method == "baseline"]
    assert sorted(c.label for c in seeds) == [
        "uniform int2",
        "uniform int4",
        "uniform int6",
        "uniform int8",
    ]
    for c in quant:
        bits = c.genome["weight_bits"]
        assert bits and set(bits.values()) <= {2, 4, 6, 8}  # x86_host's integer widths
        assert "classifier" in bits
        assert c.metrics["weight_bytes"] < float_best.metrics["weight_bytes"]
        assert any(k.endswith("QLinearConv") for k in c.kernels)
        # the integer model's own accuracy in onnxruntime, beside the PyTorch (fake-quant) one
        assert abs(c.metrics["val_accuracy_onnxruntime"] - c.metrics["val_accuracy"]) < 0.05
    best = result.best
    assert best.stage == "quantization"
    meta = load(result.out / "best" / "student.pt")["meta"]
    assert meta["quantized"] is True and meta["weight_range_bits"] in (7, 8)


def test_quantization_is_skipped_on_a_float_only_device(tiny_search):
    from hwcompress.search.progress import SearchReporter

    messages = []

    class Collect(SearchReporter):
        def message(self, text):
            messages.append(text)

    result = run_search(
        SearchConfig(
            **{
                **tiny_search,
                "profile": "jetson_nano",
                "episodes": 1,
                "rollouts": 1,
                "stages": ("removal", "quantization"),
            }
        ),
        reporter=Collect(),
    )
    assert not [c for c in result.candidates if c.stage == "quantization"]
    assert any("runs no integer kernels" in m for m in messages)


def test_final_distillation_uses_the_whole_training_split(tiny_search):
    settings = {**tiny_search, "episodes": 1, "rollouts": 1}
    run_search(SearchConfig(**settings))
    # the final fine-tune may be added to a finished run by resuming it
    # (on a small split it runs more epochs, until it has taken final_min_steps steps:
    # 1,295 digits images are 21 batches, so 40 steps take 2 epochs, on shifted images)
    overrides = {"final_epochs": 1, "final_min_steps": 40}
    result = run_search(load_search_config(settings["out"], overrides), resume=True)
    final = result.final_distillation
    assert final is not None and final["epochs"] == 2 and final["shift_pixels"] == 1
    assert final["train_samples"] > settings["train_limit"]
    data = json.loads((result.out / "results.json").read_text())
    assert data["best"]["final_distillation"] == final
    from hwcompress.export.student import load_student

    shipped = load_student(result.out)
    counted = analyze_module(shipped.model, shipped.input_shape)
    assert counted.params == result.best.metrics["params"]


def test_a_budget_is_shared_so_every_stage_runs(tiny_search):
    settings = {
        **tiny_search,
        "episodes": 200,  # far more than the budget allows
        "rollouts": 4,
        "method": "random",  # keeps proposing new students (a policy soon repeats cached ones)
        "budget_minutes": 1.0,
        "stages": ("removal", "shrinkage", "quantization"),
    }
    result = run_search(SearchConfig(**settings))
    data = json.loads((result.out / "results.json").read_text())
    assert data["stopped_by_budget"] is True
    plan = data["budget"]["plan_s"]
    assert list(plan) == ["removal", "shrinkage", "quantization"]
    assert sum(plan.values()) == pytest.approx(60.0)
    stages = {c.stage for c in result.candidates if c.method != "baseline"}
    assert stages == {"removal", "shrinkage", "quantization"}
    assert any(c.stage == "quantization" and c.status == "ok" for c in result.candidates)
    episodes = Journal(result.out / "journal.jsonl").episodes()
    assert len(episodes) < 3 * 200


def test_target_mode_ranks_by_accuracy_within_the_target(tiny_search):
    result = run_search(SearchConfig(**{**tiny_search, "target": ("params=8x",)}))
    data = json.loads((result.out / "results.json").read_text())
    teacher = data["teacher"]
    bound = teacher["metrics"]["params"] / 8
    assert data["target"] == ["params=8x"]
    best = data["best"]
    assert best["feasible"] and best["metrics"]["params"] <= bound
    assert "target_params" in best["slack"]
    # the reward is the accuracy ratio; the product the most accurate feasible student
    assert best["reward"] == pytest.approx(
        best["metrics"]["val_accuracy"] / teacher["val_accuracy"]
    )
    feasible = [c for c in data["candidates"] if c["status"] == "ok" and c["feasible"]]
    assert best["metrics"]["val_accuracy"] == max(c["metrics"]["val_accuracy"] for c in feasible)
    # proposals are clamped into the target, so every student the policies propose fits it
    proposed = [c for c in data["candidates"] if c["method"] == "n2n" and c["status"] == "ok"]
    assert proposed and all(c["metrics"]["params"] <= bound for c in proposed)
    # with a target the removal stage's proposals were already scaled to it: no narrowed
    # copies of them are added
    assert not [
        c for c in data["candidates"] if c["stage"] == "shrinkage" and c["method"] == "baseline"
    ]


def test_a_genome_trains_the_same_whatever_ran_before_it(tiny_search):
    """Reproducibility: a candidate's result depends on the run's seed and its genome only,
    not on what the process drew or iterated before (float and quantized candidates)."""
    from hwcompress.search.evaluate import CandidateEvaluator
    from hwcompress.search.runner import prepare_context

    # more training batches than calibration reads, so their order matters
    settings = {**tiny_search, "train_limit": 800}
    ctx, _ = prepare_context(SearchConfig(**settings), Path(settings["out"]))
    layers = [layer.name for layer in ctx.spec.layers if layer.kind == "conv"]
    genomes = {
        "removal": Genome(keep={ctx.spec.removable[1].name: False}),
        "quantization": Genome(weight_bits={name: 4 for name in layers}),
    }

    def evaluate_after(stage: str, draws: int) -> dict[str, float]:
        torch.rand(draws)  # whatever else the process did before
        for _ in range(draws % 3):
            next(iter(ctx.data.train))
        cand = CandidateEvaluator(ctx).evaluate(genomes[stage], stage=stage, episode=0, method="x")
        assert cand.status == "ok", cand.reason
        return {k: v for k, v in cand.metrics.items() if k.startswith("val_accuracy")}

    for stage in genomes:
        assert evaluate_after(stage, 1) == evaluate_after(stage, 12_347), stage


def test_the_shrinkage_policy_starts_around_the_best_student_random_search_does_not(tiny_search):
    from hwcompress.search.progress import SearchReporter

    def run(method):
        messages = []

        class Collect(SearchReporter):
            def message(self, text):
                messages.append(text)

        settings = {**tiny_search, "episodes": 1, "rollouts": 2, "stages": ("shrinkage",)}
        settings["out"] += f"-{method}"
        result = run_search(SearchConfig(**settings, method=method), reporter=Collect())
        return result, messages

    result, messages = run("n2n")
    assert any("starts around the best student so far" in m for m in messages)
    seeds = [c for c in result.candidates if c.method == "baseline"]
    assert seeds and all(c.stage == "shrinkage" for c in seeds)
    _, messages = run("random")
    assert not any("starts around" in m for m in messages)


def test_a_latency_target_steers_the_search_and_its_front_can_be_picked(tiny_search, tmp_path):
    from typer.testing import CliRunner

    from hwcompress.cli import app

    config = SearchConfig(**{**tiny_search, "target": ("latency_ms=2x",), "latency_students": 8})
    result = run_search(config)
    data = json.loads((result.out / "results.json").read_text())
    # a latency model was fitted on measured students and kept for a resume
    assert data["latency_model"]["fitted_on"] == 9
    assert (result.out / "latency_model.json").is_file()
    # the latency-matched seeds (uniform and L1 scaled to the budget) are journaled: of the
    # full-depth student, and of each carried structure with removals (on a host where no
    # full-depth student of this tiny teacher is 2x faster, those are the only ones)
    journaled = [
        r["candidate"]
        for r in Journal(result.out / "journal.jsonl").records()
        if r.get("type") == "candidate"
    ]
    labels = {c["label"] for c in journaled if c["method"] == "baseline"}
    assert any(lab.split(", ")[-1].startswith("uniform latency") for lab in labels), labels
    assert any(lab.split(", ")[-1].startswith("l1 latency") for lab in labels), labels
    assert all(
        c["genome"]["keep"] and not all(c["genome"]["keep"].values())
        for c in journaled
        if c["method"] == "baseline" and " removed, " in c["label"]
    )
    # every candidate was timed in turn with the teacher; x86_host snaps channels to this
    # machine's NCHWc block
    ok = [c for c in data["candidates"] if c["status"] == "ok"]
    assert ok and all("latency_ratio" in c["metrics"] for c in ok)
    # each structure's first timing is kept and read by every later one: a seed is judged
    # on the timing that chose it (its untrained copy's, in the bisection)
    kept = json.loads((result.out / "latencies.json").read_text())["entries"]
    for c in ok:
        entry = kept[Genome.from_dict(c["genome"]).key()]
        assert c["metrics"]["latency_ratio"] == pytest.approx(entry["ratio"])
    # the leaders were timed again before the choice; the product is counted at the slower
    # sitting plus the gap between its sittings
    confirmed = data["best"]["chosen"]["latency_confirmed"]
    assert len(confirmed) >= 1 and data["best"]["id"] in confirmed
    best = data["best"]["metrics"]
    assert best["latency_ms"] >= best["latency_first_ms"]
    # the budget is aimed at with the configured headroom under it
    bound = parse_target(data["target"][0]).bound(data["teacher"]["metrics"])
    aimed = bound * (1 - config.latency_headroom)
    assert data["best"]["feasible"] == (best["latency_ms"] <= aimed * (1 + 1e-9))
    assert data["latency_model"]["channel_multiple"] == host_channel_block()
    # the share of feasible policy samples and of clamped proposals, per stage
    planned = config.episodes * config.rollouts
    for stage in ("removal", "shrinkage"):
        row = data["feasibility"][stage]
        assert row["proposals"] > 0 and 0 <= row["clamped"] <= row["proposals"]
    # a proposal repeating an earlier student takes no rollout: at most the budget, the
    # removal stage's unspent rollouts going to the shrinkage stage
    proposals = {s: data["feasibility"][s]["proposals"] for s in ("removal", "shrinkage")}
    assert proposals["removal"] <= planned
    assert sum(proposals.values()) <= 2 * planned
    # the summary leads with what a user judges by: size, speed here, change on test
    summary = data["summary"]
    assert "fewer parameters" in summary["headline"] and "points on test" in summary["headline"]
    assert summary["test_change_points"] == pytest.approx(
        100 * (data["best"]["test_accuracy"] - data["teacher"]["test_accuracy"])
    )
    assert summary["deploy"] == "best/student.onnx"
    assert summary["export_int8"].startswith("hwcompress export ")
    # the front is what the report plots and what --pick reads
    front = data["front"]
    assert front and front == sorted(front, key=lambda f: f["latency_ms"])
    assert (result.out / "report" / "pareto_latency.png").stat().st_size > 0
    bound = front[0]["latency_ms"] * 1.0001
    out = tmp_path / "picked.onnx"
    res = CliRunner().invoke(
        app,
        [
            "export",
            str(result.out),
            "--pick",
            f"latency_ms={bound}",
            "--format",
            "onnx",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"picked {front[0]['id']}" in res.output
    assert out.is_file()
    res = CliRunner().invoke(
        app, ["export", str(result.out), "--pick", "latency_ms=1e-9", "--out", str(out)]
    )
    assert res.exit_code != 0
    assert "no student of this run runs within" in str(res.exception)
