from __future__ import annotations

from types import SimpleNamespace

import pytest

from hwcompress.arch import Genome, build_spec
from hwcompress.models import build_builtin
from hwcompress.search.config import SearchConfig
from hwcompress.search.policies import WIDTH_CHOICES
from hwcompress.search.product import ProductScore, rank
from hwcompress.search.shrink_stage import RELATIVE_CHOICES, UNCHANGED, ShrinkageStage
from tests.search.test_stages import _cand


class _Run:
    """The part of a run the shrinkage stage reads before its episodes: the teacher and its
    spec, the float students so far (real candidates), the run-wide score and ranking, the
    config, and whether proposals are filled to a latency budget."""

    def __init__(self, cands, *, fill=True, stages=None, episodes=4, rollouts=4):
        teacher = build_builtin("vgg")
        self.ctx = SimpleNamespace(teacher=teacher, spec=build_spec(teacher, (1, 1, 28, 28)))
        self._cands = cands
        self.score = ProductScore({"params": 1e6}, 0.93, "params", "accuracy")
        self.fill = fill
        self.latency = None
        self.config = SearchConfig(
            profile="x86_host",
            episodes=episodes,
            rollouts=rollouts,
            **({"stages": stages} if stages else {}),
        )
        self.reporter = SimpleNamespace(message=lambda text: None)
        self.removal_episodes = episodes  # the journal's records of finished episodes
        self.journal = SimpleNamespace(
            episodes=lambda: [
                {"type": "episode", "stage": "removal", "episode": e}
                for e in range(self.removal_episodes)
            ]
        )

    def floats(self):
        return self._cands

    def best_of(self, cands):
        ranked = rank(cands, self.score)
        return ranked[0] if ranked else None


def _widths(spec, values):
    return {g.key: v for g, v in zip(spec.shrinkable, values, strict=False)}


def test_where_latency_fills_a_structure_is_decided_relative_to_its_best_student():
    run = _Run([])
    spec = run.ctx.spec
    seed = _widths(spec, [0.25, 0.5, 0.75, 0.25, 0.5, 0.125])
    run._cands = [
        _cand("seed", Genome(width=seed), "shrinkage", -1, 0.90),
        _cand("worse", Genome(width=_widths(spec, [0.5] * 6)), "removal", -1, 0.85),
        # the stage's own samples (a resumed run's) and infeasible students do not count
        _cand("own", Genome(width=_widths(spec, [0.2] * 6)), "shrinkage", 0, 0.95),
        _cand("over", Genome(width=_widths(spec, [0.9] * 6)), "removal", -1, 0.99, False),
    ]
    stage = ShrinkageStage()
    prepared = [(Genome(), *stage.items(run, Genome()))]
    [(base, items, features)] = stage.worth_sampling(run, prepared)
    assert base.width == {k: seed[k] for k in items}
    assert features.shape[0] == len(items)
    # the policy starts on that student: each width kept, and that is the student itself
    shown = stage.demonstration(run, base, items)
    assert shown == [UNCHANGED] * len(items)
    assert stage.genome(run, base, items, shown).width == base.width
    # an action is a factor on the student's width (at most the teacher's)
    actions = [UNCHANGED + 1, UNCHANGED - 2, *[len(RELATIVE_CHOICES) - 1] * (len(items) - 2)]
    width = stage.genome(run, base, items, actions).width
    assert width[items[0]] == pytest.approx(seed[items[0]] * RELATIVE_CHOICES[UNCHANGED + 1])
    assert width[items[1]] == pytest.approx(seed[items[1]] * RELATIVE_CHOICES[UNCHANGED - 2])
    assert width[items[2]] == 1.0
    # without a budget to fill, or with no student of the structure, actions stay widths
    for other in (_Run(run._cands, fill=False), _Run([])):
        [(plain, _, _)] = stage.worth_sampling(other, prepared)
        assert plain == Genome()
        assert stage.genome(other, plain, items, [3] * len(items)).width == {
            k: WIDTH_CHOICES[3] for k in items
        }


def test_the_shrinkage_stage_takes_the_rollouts_the_removal_stage_left_unspent():
    spec = build_spec(build_builtin("vgg"), (1, 1, 28, 28))
    units = [u.name for u in spec.units]
    removal = [
        _cand(f"r{i}", Genome(keep={units[i % len(units)]: False}), "removal", i // 4, 0.9)
        for i in range(10)
    ]
    seeds = [_cand(f"s{i}", Genome(), "removal", -1, 0.9) for i in range(3)]
    run = _Run([*removal, *seeds, _cand("x", Genome(), "shrinkage", 0, 0.9)])
    stage = ShrinkageStage()
    # 4 episodes of 4 rollouts, 10 new students: 6 more spread over the 4 episodes, the
    # earlier ones first (seeds and this stage's students do not count)
    assert [stage.rollouts(run, ep) for ep in range(4)] == [6, 6, 5, 5]
    run._cands = [*removal, _cand("r10", Genome(), "removal", 3, 0.9), *removal[:6]]
    assert [stage.rollouts(run, ep) for ep in range(4)] == [6, 5, 5, 5]  # repeats count once
    # a removal stage the time budget stopped after 3 episodes left 1 rollout, not 5: the
    # episode it never ran took its time with it
    run.removal_episodes = 3
    assert [stage.rollouts(run, ep) for ep in range(4)] == [5, 4, 4, 4]
    # a run without a removal stage has no spare rollouts to give
    run.removal_episodes = 0
    assert [stage.rollouts(run, ep) for ep in range(4)] == [4] * 4
