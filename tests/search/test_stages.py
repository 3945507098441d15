from __future__ import annotations

import math

import torch

from hwcompress.arch import Genome, build_spec
from hwcompress.models import build_builtin
from hwcompress.search.candidate import Candidate
from hwcompress.search.policies import WIDTH_CHOICES, grid_widths
from hwcompress.search.product import ProductScore, rank
from hwcompress.search.rollouts import draw
from hwcompress.search.shrink_stage import ShrinkageStage
from hwcompress.search.stages import RemovalStage


def _params(spec, items, choice):
    return spec.predict_params(
        Genome(width={k: WIDTH_CHOICES[c] for k, c in zip(items, choice, strict=True)})
    )


def test_the_policy_is_shown_a_student_no_larger_than_the_demonstrated_one():
    spec = build_spec(build_builtin("vgg"), (1, 1, 28, 28))
    items = [g.key for g in spec.shrinkable]
    widths = [0.37, 0.36, 0.35, 0.37, 0.36, 0.38]
    shown = spec.predict_params(Genome(width=dict(zip(items, widths, strict=True))))
    choice = grid_widths(widths, lambda c: _params(spec, items, c), shown)
    nearest = [
        min(range(len(WIDTH_CHOICES)), key=lambda i: abs(WIDTH_CHOICES[i] - w)) for w in widths
    ]
    # rounding to the nearest choice (0.4 everywhere) is a larger student than the one shown
    assert _params(spec, items, nearest) > 1.1 * shown
    assert _params(spec, items, choice) <= shown
    # each width is the choice just below or just above it, and some are raised
    for w, c in zip(widths, choice, strict=True):
        assert WIDTH_CHOICES[c] in (math.floor(w * 10) / 10, math.ceil(w * 10) / 10)
    assert _params(spec, items, choice) > _params(spec, items, [2] * len(items))


def test_grid_widths_keeps_widths_on_the_grid_and_clips_below_the_smallest():
    def size(c):
        return sum(WIDTH_CHOICES[i] ** 2 for i in c)

    assert grid_widths([0.5, 1.0, 0.05], size, size([4, 9, 0])) == [4, 9, 0]
    assert grid_widths([0.37, 0.37], size, 2 * 0.37**2) == [3, 2]


class _Run:
    """The part of a run :meth:`ShrinkageStage.worth_sampling` and the demonstrations read:
    its float students (real candidates), the run-wide score and ranking, and a reporter."""

    def __init__(self, cands):
        self._cands = cands
        self.score = ProductScore({"params": 1e6}, 0.93, "params", "accuracy")
        self.messages: list[str] = []
        self.reporter = self
        self.fill = False

    def floats(self):
        return self._cands

    def best_of(self, cands):
        ranked = rank(cands, self.score)
        return ranked[0] if ranked else None

    def message(self, text):
        self.messages.append(text)


def _cand(cid, genome, stage, episode, val, feasible=True):
    return Candidate(
        id=cid,
        stage=stage,
        episode=episode,
        method="baseline" if episode < 0 else "n2n",
        genome=genome.to_dict(),
        metrics={"val_accuracy": val, "params": 1e4},
        feasible=feasible,
    )


def test_rollouts_go_to_the_structures_close_to_the_best():
    spec = build_spec(build_builtin("vgg"), (1, 1, 28, 28))
    units = [u.name for u in spec.units]
    full = Genome()
    one = Genome(keep={units[0]: False})
    three = Genome(keep={u: False for u in units[:3]})
    half = {g.key: 0.5 for g in spec.shrinkable}
    shrink = ShrinkageStage()
    cands = [
        _cand("a", Genome(width=half), "removal", -1, 0.90),
        _cand("b", Genome(keep=one.keep, width=half), "removal", 0, 0.91),
        _cand("c", Genome(keep=three.keep, width=half), "shrinkage", -1, 0.83),
        # this stage's own samples do not count (a resumed run decides as when it started),
        # nor do students that break a constraint
        _cand(
            "d",
            Genome(keep=three.keep, width=dict(half, **{k: 0.4 for k in half})),
            "shrinkage",
            2,
            0.95,
        ),
        _cand(
            "e",
            Genome(keep=three.keep, width={k: 0.9 for k in half}),
            "removal",
            1,
            0.96,
            feasible=False,
        ),
    ]
    run = _Run(cands)
    prepared = [(g, ["x"], torch.zeros(1)) for g in (full, one, three)]
    kept = shrink.worth_sampling(run, prepared)
    # best first; the structure 8 points behind takes no rollouts
    assert [p[0] for p in kept] == [one, full]
    assert run.messages and "1 of the 3" in run.messages[0]
    # with no eligible student yet, every base is kept as it was
    assert shrink.worth_sampling(_Run([]), prepared) == prepared
    # the base stage keeps them all
    assert RemovalStage().worth_sampling(run, prepared) == prepared


class _DrawRun:
    """The part of a run :func:`~hwcompress.search.rollouts.draw` reads: the config's rollouts, the
    evaluator's cache of earlier students (real candidates), the spec and the budgets."""

    def __init__(self, spec, cached, rollouts=4):
        from types import SimpleNamespace

        from hwcompress.search.config import SearchConfig

        self.config = SearchConfig(profile="x86_host", rollouts=rollouts)
        self.evaluator = SimpleNamespace(cache={c.id: c for c in cached})
        self.ctx = SimpleNamespace(spec=spec)
        self.caps: dict[str, float] = {}
        self.latency = None
        self.multiple = 1
        self.fill = False


def _keyed(genome, stage, episode):
    """A candidate of ``genome`` with the id the evaluator's cache keys it by."""
    return _cand(genome.key(), genome, stage, episode, 0.9)


def test_an_episode_trains_only_students_the_run_has_not_seen():
    from hwcompress.search.methods import RandomController

    spec = build_spec(build_builtin("vgg"), (1, 1, 28, 28))
    stage = RemovalStage()
    items = [u.name for u in spec.units]
    features = torch.zeros(len(items), 4)
    prepared = [(Genome(), items, features)]

    def proposals(seed, n):
        gen = torch.Generator().manual_seed(seed)
        ctl = RandomController("removal")
        return [
            stage.genome(None, Genome(), items, ctl.sample(features, gen).actions) for _ in range(n)
        ]

    # the first proposals of this episode's generator were evaluated in earlier episodes
    earlier = [_keyed(g, "removal", 0) for g in proposals(5, 6)]
    # ... and one in this very episode before an interruption: it counts as new (a resumed
    # run draws as the first one did)
    this_one = proposals(5, 8)[7]
    run = _DrawRun(spec, [*earlier, _keyed(this_one, "removal", 1)])
    samples, genomes, clamped = draw(
        run, stage, RandomController("removal"), prepared, torch.Generator().manual_seed(5), 1
    )
    keys = [g.key() for g in genomes]
    assert len(genomes) == len(samples) == 4 and len(set(keys)) == 4
    assert clamped == 0
    # the generator's proposals in order, less the earlier students' and the repeats
    old = {c.id for c in earlier}
    expected = [k for k in dict.fromkeys(g.key() for g in proposals(5, 32)) if k not in old]
    assert keys == expected[:4] and this_one.key() in expected
    # a fresh run takes the generator's first four distinct proposals
    _, first, _ = draw(
        _DrawRun(spec, []),
        stage,
        RandomController("removal"),
        prepared,
        torch.Generator().manual_seed(5),
        1,
    )
    assert [g.key() for g in first] == list(dict.fromkeys(g.key() for g in proposals(5, 32)))[:4]


def test_an_episode_that_draws_nothing_new_still_teaches_the_policy():
    from hwcompress.search.policies import Sample

    class Same:
        """A controller that only ever proposes keeping every unit."""

        def sample(self, features, generator):
            return Sample([1] * features.shape[0], torch.zeros(()))

    spec = build_spec(build_builtin("vgg"), (1, 1, 28, 28))
    stage = RemovalStage()
    items = [u.name for u in spec.units]
    full = stage.genome(None, Genome(), items, [1] * len(items))
    run = _DrawRun(spec, [_keyed(full, "removal", -1)], rollouts=3)
    prepared = [(Genome(), items, torch.zeros(len(items), 4))]
    samples, genomes, _ = draw(run, stage, Same(), prepared, torch.Generator(), 0)
    # the repeats (each cost nothing): as many as the episode's rollouts, not 8 per rollout
    assert len(samples) == 3 and {g.key() for g in genomes} == {full.key()}


def test_the_removal_policy_is_shown_the_best_students_units_only_where_latency_fills():
    spec = build_spec(build_builtin("vgg"), (1, 1, 28, 28))
    units = [u.name for u in spec.units]
    half = {g.key: 0.5 for g in spec.shrinkable}
    cands = [
        _cand("a", Genome(width=half), "removal", -1, 0.90),
        _cand("b", Genome(keep={units[1]: False}, width=half), "removal", -1, 0.92),
        # its own samples do not count (a resumed run is shown the same), nor infeasible ones
        _cand("c", Genome(keep={units[0]: False}, width=half), "removal", 0, 0.97),
        _cand("d", Genome(keep={units[2]: False}, width=half), "removal", -1, 0.99, False),
    ]
    run = _Run(cands)
    run.fill = True
    shown = RemovalStage().demonstration(run, Genome(), units)
    assert shown == [0 if u == units[1] else 1 for u in units]
    # without a latency budget to fill, a keep-all start proposes barely compressed students
    run.fill = False
    assert RemovalStage().demonstration(run, Genome(), units) is None
    run.fill, run._cands = True, []
    assert RemovalStage().demonstration(run, Genome(), units) is None
