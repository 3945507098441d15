"""Screening a policy's proposals with a surrogate of the proxy reward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwcompress.arch import Genome, build_spec
from hwcompress.models import build_builtin
from hwcompress.search.candidate import Candidate, Status
from hwcompress.search.features import unit_features
from hwcompress.search.methods import PolicyController, RandomController
from hwcompress.search.rollouts import draw
from hwcompress.search.screen import (
    MIN_FITTED,
    expected_improvement,
    genome_vector,
    proxy_reward,
    screen,
    within_budget,
)
from hwcompress.search.stages import RemovalStage
from tests.search.test_stages import _DrawRun


@pytest.fixture(scope="module")
def spec():
    return build_spec(build_builtin("vgg"), (1, 1, 28, 28))


def _true_reward(spec, genome: Genome) -> float:
    """A smooth proxy reward: wide late groups help, a wide first group costs, removals
    cost."""
    first, last = spec.shrinkable[0].key, spec.shrinkable[-1].key
    removed = sum(1 for kept in genome.keep.values() if not kept)
    return (
        0.8
        + 0.05 * math.log(genome.width.get(last, 1.0))
        - 0.03 * math.log(genome.width.get(first, 1.0))
        - 0.04 * removed
    )


def _random_genomes(spec, n: int, seed: int) -> list[Genome]:
    rng = np.random.default_rng(seed)
    choices = (0.25, 0.375, 0.5, 0.75, 1.0)
    return [
        Genome(width={g.key: float(rng.choice(choices)) for g in spec.shrinkable}) for _ in range(n)
    ]


def _known(spec, genomes: list[Genome], stage: str = "shrinkage") -> list[Candidate]:
    return [
        Candidate(
            id=g.key(),
            stage=stage,
            episode=-1,
            method="baseline",
            genome=g.to_dict(),
            reward=_true_reward(spec, g),
            feasible=True,
        )
        for g in genomes
    ]


def test_the_proxy_reward_is_the_first_fidelitys_and_none_for_a_student_that_broke_a_row():
    promoted = Candidate(
        id="a",
        stage="shrinkage",
        episode=0,
        method="n2n",
        genome={},
        reward=0.95,
        feasible=True,
        fidelity=2,
        history=[{"fidelity": 1, "reward": 0.8}, {"fidelity": 2, "reward": 0.95}],
    )
    assert proxy_reward(promoted) == 0.8
    fresh = Candidate(
        id="b", stage="shrinkage", episode=0, method="n2n", genome={}, reward=0.7, feasible=True
    )
    assert proxy_reward(fresh) == 0.7
    over = Candidate(id="c", stage="shrinkage", episode=0, method="n2n", genome={}, reward=-1.0)
    failed = Candidate(
        id="d", stage="x", episode=0, method="n2n", genome={}, status=Status.FAILED, feasible=True
    )
    assert proxy_reward(over) is None and proxy_reward(failed) is None


def test_expected_improvement_grows_with_the_mean_and_with_the_uncertainty():
    mean = np.array([0.7, 0.8, 0.9, 0.8])
    std = np.array([0.01, 0.01, 0.01, 0.1])
    ei = expected_improvement(mean, std, 0.85)
    assert ei[0] < ei[1] < ei[2]
    assert ei[3] > ei[1]  # as likely a mean, far more spread: more to gain
    assert (ei >= 0).all()


def test_the_features_are_log_widths_then_removals(spec):
    unit = spec.removable[0].name
    g = Genome(keep={unit: False}, width={spec.shrinkable[0].key: 0.5})
    x = genome_vector(spec, g)
    assert len(x) == len(spec.shrinkable) + len(spec.removable)
    assert x[0] == pytest.approx(math.log(0.5)) and x[1] == 0.0
    assert x[len(spec.shrinkable)] == 1.0 and sum(x[len(spec.shrinkable) :]) == 1.0


def test_the_screen_keeps_the_proposals_the_fit_expects_most_of(spec):
    known = _known(spec, _random_genomes(spec, 24, seed=0))
    pool = _random_genomes(spec, 16, seed=1)
    chosen = screen(spec, known, pool, 4)
    assert len(chosen) == 4 and chosen == sorted(set(chosen))
    truth = [_true_reward(spec, g) for g in pool]
    picked = [truth[i] for i in chosen]
    # the pool's best is kept and most of the kept proposals are in the better half (the
    # expected improvement may spend one on a proposal far from every known student)
    assert max(truth) in picked
    assert sum(t >= float(np.median(truth)) for t in picked) >= 3
    assert np.mean(picked) > np.mean(truth)


def test_without_enough_students_or_a_larger_pool_the_draw_order_stands(spec):
    few = _known(spec, _random_genomes(spec, MIN_FITTED - 1, seed=0))
    pool = _random_genomes(spec, 12, seed=1)
    assert screen(spec, few, pool, 4) == [0, 1, 2, 3]
    # students that broke a row carry no proxy reward: they do not count towards the fit
    broken = [
        Candidate(id=f"x{i}", stage="s", episode=0, method="n2n", genome={}, reward=-1.0)
        for i in range(10)
    ]
    assert screen(spec, few + broken, pool, 4) == [0, 1, 2, 3]
    assert screen(spec, _known(spec, _random_genomes(spec, 20, 2)), pool[:3], 4) == [0, 1, 2]


def _measured(spec, genome: Genome) -> float:
    """A measured latency (ms) the flat prediction of 1 ms misses: the last group's width
    costs more time than predicted (exactly what makes it look worth having)."""
    return float(np.exp(0.4 * math.log(genome.width.get(spec.shrinkable[-1].key, 1.0))))


def _timed(spec, genomes: list[Genome], budget: float) -> list[Candidate]:
    known = _known(spec, genomes)
    for c, g in zip(known, genomes, strict=True):
        c.metrics = {"latency_ms": _measured(spec, g)}
        c.feasible = c.metrics["latency_ms"] <= budget
        c.reward = c.reward if c.feasible else -1.0
    return known


def test_the_chance_of_measuring_within_the_budget_learns_where_the_prediction_misses(spec):
    budget = 0.7
    known = _timed(spec, _random_genomes(spec, 24, seed=0), budget)
    pool = _random_genomes(spec, 16, seed=1)
    flat = lambda g: 1.0  # noqa: E731  (every proposal filled to the same predicted latency)
    p = within_budget(spec, known, pool, flat, budget)
    over = np.array([_measured(spec, g) > budget for g in pool])
    assert p.shape == (16,) and ((p >= 0) & (p <= 1)).all()
    assert p[~over].min() > p[over].max()
    # until enough students were measured, every proposal counts as within the budget
    assert (within_budget(spec, known[: MIN_FITTED - 1], pool, flat, budget) == 1).all()


def test_the_screen_weighs_the_gain_by_the_chance_of_measuring_within_the_budget(spec):
    budget = 0.8  # a last group at half width or less measures within it
    known = _timed(spec, _random_genomes(spec, 40, seed=0), budget)
    pool = _random_genomes(spec, 16, seed=1)
    over = [_measured(spec, g) > budget for g in pool]
    assert 4 < sum(over) < 12
    blind = screen(spec, known, pool, 4)
    aware = screen(spec, known, pool, 4, latency=lambda g: 1.0, budget_ms=budget)
    # the fit of the reward alone favours wide last groups, the ones that measure too slow
    assert sum(over[i] for i in blind) >= 2
    assert not any(over[i] for i in aware)


def _removal_setup(spec):
    stage = RemovalStage()
    items = [u.name for u in spec.units]
    prepared = [(Genome(), items, unit_features(spec))]
    known = []
    rng = np.random.default_rng(3)
    for _ in range(12):  # earlier students: a few removals each
        keep = {u.name: bool(rng.random() > 0.3) for u in spec.removable}
        known.append(Genome(keep=keep))
    return stage, prepared, _known(spec, known, stage="removal")


def test_where_latency_fills_a_policy_trains_the_screened_part_of_a_larger_pool(spec):
    stage, prepared, known = _removal_setup(spec)
    torch.manual_seed(0)
    controller = PolicyController("removal")

    def run_with(pool: int, rollouts: int, fill: bool = True) -> _DrawRun:
        run = _DrawRun(spec, known, rollouts=rollouts)
        run.config = type(run.config)(profile="x86_host", rollouts=rollouts, screen_pool=pool)
        run.fill = fill
        return run

    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    # the pool: the policy's first 16 new proposals, as a run without screening draws them
    _, pool, _ = draw(run_with(1, 16), stage, controller, prepared, gen(), 0)
    samples, genomes, _ = draw(run_with(4, 4), stage, controller, prepared, gen(), 0)
    assert len(samples) == len(genomes) == 4
    expected = [pool[i] for i in screen(spec, known, pool, 4)]
    assert [g.key() for g in genomes] == [g.key() for g in expected]
    assert [g.key() for g in genomes] != [g.key() for g in pool[:4]]
    # without a latency budget to fill, the first four proposals, as before
    _, plain, _ = draw(run_with(4, 4, fill=False), stage, controller, prepared, gen(), 0)
    assert [g.key() for g in plain] == [g.key() for g in pool[:4]]
    # random search is the control: it never screens
    ctl = RandomController("removal")
    _, rand, _ = draw(run_with(4, 4), stage, ctl, prepared, gen(), 0)
    _, rand_plain, _ = draw(run_with(1, 4), stage, ctl, prepared, gen(), 0)
    assert [g.key() for g in rand] == [g.key() for g in rand_plain]


def test_screen_pool_must_be_at_least_one():
    from hwcompress.errors import ConfigError
    from hwcompress.search.config import SearchConfig

    with pytest.raises(ConfigError, match="screen_pool"):
        SearchConfig(profile="x86_host", screen_pool=0)
