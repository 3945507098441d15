"""The drl-prune method: the DDPG channel agent's budget, learning and state; the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.errors import HwCompressError
from hwcompress.measure.stats import analyze_module
from hwcompress.models import build_builtin
from hwcompress.search import SearchConfig, load_search_config, run_search
from hwcompress.search.ddpg import DDPGConfig, DDPGController, MacsBudget
from hwcompress.search.features import group_features
from hwcompress.search.journal import Journal

SHAPE = (1, 1, 8, 8)


def _setup(name: str = "builtin:vgg", target: float = 0.3, **agent):
    torch.manual_seed(0)
    teacher = build_builtin(name.split(":")[1]).eval()
    spec = build_spec(teacher, SHAPE)
    groups = spec.shrinkable
    keys = [g.key for g in groups]
    full = spec.predict_macs(Genome())
    cfg = DDPGConfig(**{"warmup": 2, "updates": 10, **agent})
    budget = MacsBudget(spec, Genome(), keys, target * full, cfg.min_keep)
    return teacher, spec, DDPGController(budget, cfg, seed=0), group_features(spec, groups)


def _conv_macs(model) -> int:
    stats = analyze_module(model, SHAPE)
    return sum(la.macs for la in stats.layers if la.kind in ("Conv2d", "Linear"))


@pytest.mark.parametrize("name", ["builtin:vgg", "builtin:resnet"])
def test_every_proposal_honours_the_macs_budget(name):
    teacher, spec, agent, feats = _setup(name, target=0.3)
    gen = torch.Generator().manual_seed(0)
    for episode in range(4):  # warm-up rollouts, then the actor with noise, then learning
        samples = [agent.sample(feats, gen) for _ in range(3)]
        for s in samples:
            genome = agent.budget.genome(s.actions)
            assert spec.predict_macs(genome) <= agent.budget.target
            assert all(agent.config.min_keep - 1e-9 <= a <= 1.0 for a in s.actions)
            if episode % 2 == 0:  # build the real student and count what it computes
                student = build_student(teacher, genome, SHAPE, spec=spec)
                assert _conv_macs(student) <= agent.budget.target
        agent.update(samples, [sum(s.actions) / len(s.actions) for s in samples])


def test_an_unreachable_target_is_refused():
    with pytest.raises(HwCompressError, match="raise flops_target"):
        _setup(target=1e-4)


def test_the_agent_learns_what_the_reward_asks():
    """Reward = keep ratio of the first group: the actor's choice there must rise."""
    _, _, agent, feats = _setup(target=1.0, warmup=4, updates=40, noise=0.3)
    gen = torch.Generator().manual_seed(1)
    first = agent.budget.state(feats, [], 1.0)
    before = float(agent.actor(first).detach())
    for _ in range(12):
        samples = [agent.sample(feats, gen) for _ in range(4)]
        agent.update(samples, [s.actions[0] for s in samples])
    after = float(agent.actor(first).detach())
    assert after > before + 0.1, (before, after)


def test_state_round_trip_continues_identically():
    _, _, a, feats = _setup()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        samples = [a.sample(feats, gen) for _ in range(2)]
        a.update(samples, [0.5, 0.7])
    _, _, b, _ = _setup()
    b.load_state_dict(a.state_dict())
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert a.sample(feats, ga).actions == b.sample(feats, gb).actions


def test_method_stages_are_checked():
    with pytest.raises(HwCompressError, match="not a stage of method drl-prune"):
        SearchConfig(profile="x86_host", method="drl-prune", stages=("removal",))
    with pytest.raises(HwCompressError, match="not a stage of method n2n"):
        SearchConfig(profile="x86_host", stages=("channels",))
    assert SearchConfig(profile="x86_host", method="drl-prune").stages == (
        "channels",
        "kernels",
        "quantization",
    )
    with pytest.raises(HwCompressError, match="flops_target must be"):
        SearchConfig(profile="x86_host", method="drl-prune", flops_target=0)


def test_drl_prune_pipeline_end_to_end(tiny_search):
    settings = {
        **tiny_search,
        "method": "drl-prune",
        "episodes": 1,
        "rollouts": 2,
        "flops_target": 0.4,
        "kernel_betas": (0.0, 1e5),  # nothing cropped, then every kernel unimportant
        "kernel_shares": (0.0, 0.5),  # the threshold alone, then half the bands by σ rank
        "kernel_steps": 250,
    }
    result = run_search(SearchConfig(**settings))
    out = Path(settings["out"])
    data = json.loads((out / "results.json").read_text())
    assert data["method"] == "drl-prune"
    cands = data["candidates"]
    assert cands and all(c["method"] in ("drl-prune", "baseline") for c in cands)
    seeds = [c for c in cands if c["method"] == "baseline"]
    assert {c["stage"] for c in seeds} == {"channels", "quantization"}
    teacher_macs = data["teacher"]["metrics"]["macs"]
    channels = [c for c in cands if c["stage"] == "channels"]
    assert len(channels) >= 2
    for c in channels:
        assert c["status"] == "ok", c["reason"]
        assert c["metrics"]["macs"] <= 0.4 * teacher_macs + 1e-6
    # the kernel stage cropped the channel student's kernels for real
    kernels = [c for c in cands if c["stage"] == "kernels"]
    assert len(kernels) == 2 and all(c["status"] == "ok" for c in kernels), kernels
    # β = 0 crops nothing by the threshold, but half the bands by rank: a partial crop
    (partial,) = [c for c in kernels if c["episode"] == 1]
    sizes = list(partial["genome"]["kernel"].values())
    (crop,) = [c for c in kernels if c["episode"] == 2]
    assert crop["genome"]["kernel"] and all(v == [1, 1] for v in crop["genome"]["kernel"].values())
    # some kernels cropped, not all of them to 1×1 (or not every conv cropped)
    assert sizes and (any(v != [1, 1] for v in sizes) or len(sizes) < len(crop["genome"]["kernel"]))
    assert crop["genome"]["width"] == data["stages"]["channels"]["genome"]["width"]
    graph = onnx.load(str(out / crop["artifacts"]["onnx"])).graph
    shapes = {
        tuple(next(a.ints for a in n.attribute if a.name == "kernel_shape"))
        for n in graph.node
        if n.op_type == "Conv"
    }
    assert (1, 1) in shapes and (3, 3) not in shapes
    assert crop["metrics"]["params"] < data["stages"]["channels"]["metrics"]["params"]
    # quantization started from the kernel stage's best student
    quant = [c for c in cands if c["stage"] == "quantization"]
    assert quant and all(c["status"] == "ok" for c in quant), [c["reason"] for c in quant]
    k_best = data["stages"]["kernels"]["genome"]
    assert all(c["genome"]["width"] == k_best["width"] for c in quant)
    assert all(c["genome"].get("kernel", {}) == k_best.get("kernel", {}) for c in quant)
    assert result.best is not None and result.best.stage == "quantization"
    # a cropped candidate rebuilds alone (as `hwcompress export` does), kernels included
    from hwcompress.export.student import load_student

    cropped = load_student(out / crop["artifacts"]["weights"])
    convs = [m for m in cropped.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {tuple(m.kernel_size) for m in convs} == {(1, 1)}
    assert load_student(out).quantized
    # a resume of a finished run repeats nothing
    before = len(Journal(out / "journal.jsonl").candidates())
    run_search(load_search_config(out, {}), resume=True)
    assert len(Journal(out / "journal.jsonl").candidates()) == before
