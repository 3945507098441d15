"""Seeds: uniform width scaling and global L1-magnitude channel pruning at a size ladder."""

from __future__ import annotations

import pytest
import torch

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.measure.stats import analyze_module
from hwcompress.models.builtin import build_builtin
from hwcompress.search.seeds import channel_scores, width_seeds

SHAPE = (1, 1, 8, 8)


@pytest.fixture
def resnet():
    """The built-in residual teacher (random weights): residual adds tie channel groups."""
    torch.manual_seed(0)
    return build_builtin("resnet").eval()


def test_seeds_meet_the_ladder_and_build(resnet):
    shape = SHAPE
    spec = build_spec(resnet, shape)
    full = spec.predict_params(Genome())
    seeds = width_seeds(resnet, spec, Genome(), {}, ratios=(2.0, 4.0))
    labels = [label for label, _ in seeds]
    assert labels == ["uniform 2x", "uniform 4x", "l1 2x", "l1 4x"]
    for label, genome in seeds:
        ratio = float(label.split()[1][:-1])
        predicted = spec.predict_params(genome)
        assert predicted <= full / ratio
        assert predicted > full / ratio / 2  # the largest student of that size, not a tiny one
        assert all(genome.keep.get(u.name, True) for u in spec.units)  # every layer kept
        built = build_student(resnet, genome, shape, spec=spec)
        assert analyze_module(built, shape).params == predicted
    uniform = dict(seeds)["uniform 2x"].width
    assert len({round(w, 1) for w in uniform.values()}) == 1  # one factor everywhere


def test_global_l1_ranks_channels_across_layers_by_normalised_magnitude(resnet):
    spec = build_spec(resnet, SHAPE)

    def l1_seed():
        return dict(width_seeds(resnet, spec, Genome(), {}, (4.0,)))["l1 4x"]

    before = l1_seed()
    assert len(set(before.width.values())) > 1  # one global threshold: widths differ per group
    # scaling one layer's weights changes no normalised score, so not the pruning either
    first = spec.shrinkable[0]
    with torch.no_grad():
        for name in first.producers:
            dict(resnet.named_modules())[name].weight.mul_(100.0)
    scores = channel_scores(resnet, spec)
    assert set(scores) == {g.key for g in spec.shrinkable}
    assert all(abs(float(s.mean()) - 1.0) < 1e-5 for s in scores.values())
    assert l1_seed() == before


def test_caps_clip_the_ladder(resnet):
    spec = build_spec(resnet, SHAPE)
    full = spec.predict_params(Genome())
    seeds = width_seeds(resnet, spec, Genome(), {"params": full / 8}, ratios=(2.0, 4.0))
    # 2× and 4× are over the cap: both become the largest student within it, once per family,
    # named by the reduction they reached
    labels = [label for label, _ in seeds]
    assert [label.split()[0] for label in labels] == ["uniform", "l1"]
    for label, g in seeds:
        assert spec.predict_params(g) <= full / 8
        assert float(label.split()[1][:-1]) == pytest.approx(full / spec.predict_params(g), 0.01)
