"""The run's latency model, the latency clamp, channel snapping and latency-matched seeds."""

from __future__ import annotations

import math

import pytest
import torch

from hwcompress.arch import Genome, build_spec
from hwcompress.hardware import load_profile
from hwcompress.models import build_builtin
from hwcompress.search.features import group_sensitivity
from hwcompress.search.latency_model import (
    FEATURES,
    LatencyModel,
    calibrate,
    calibration_genomes,
    genome_features,
)
from hwcompress.search.seeds import (
    MEASURED_MARGIN,
    NEAR_BUDGET,
    NEAR_BUDGET_TARGET,
    time_widths,
    uniform_genome,
    width_seeds,
)
from hwcompress.search.target import LATENCY_MARGIN, fit_genome, fits, snap, snap_genome


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    model = build_builtin("vgg", num_classes=10, in_channels=1).eval()
    return model, build_spec(model, (1, 1, 16, 16))


def _padded_predictor(spec):
    """A stand-in latency predictor in ms: 10 ms for the teacher, proportional to the
    block-padded convolution MACs."""
    teacher = genome_features(spec, Genome(), 16)

    def predict(g: Genome) -> float:
        f = genome_features(spec, g, 16)
        return 10 * f["padded_conv_macs"] / teacher["padded_conv_macs"]

    return predict


def test_features_count_padding_and_channels_off_the_block(vgg):
    _, spec = vgg
    keys = [g.key for g in spec.shrinkable]
    aligned = genome_features(spec, Genome(width={k: 0.5 for k in keys}), block=16)
    off = genome_features(spec, Genome(width={k: 17 / 32 for k in keys}), block=16)
    assert aligned["unaligned_conv_macs"] == 0
    assert off["unaligned_conv_macs"] > 0
    # 17 of 32 channels pad to 32: the padded MACs exceed the plain ones by far
    plain = sum(off[k] for k in FEATURES if k.startswith("conv_macs"))
    assert off["padded_conv_macs"] > 2 * plain
    assert aligned["padded_conv_macs"] < off["padded_conv_macs"]


def test_a_fit_recovers_a_known_latency_law_and_round_trips(vgg, tmp_path):
    _, spec = vgg
    genomes = [Genome(), *calibration_genomes(spec, 30, seed=1, multiple=16)]
    teacher = genome_features(spec, Genome(), 16)

    def law(g: Genome) -> float:
        f = genome_features(spec, g, 16)
        return (
            0.05
            + 0.7 * f["padded_conv_macs"] / teacher["padded_conv_macs"]
            + 0.25 * (f["elements"] / teacher["elements"])
        )

    ratios = [law(g) for g in genomes]
    model = LatencyModel.fit(spec, genomes, ratios, teacher_ms=2.0, block=16)
    assert model.median_error < 1e-3
    probe = calibration_genomes(spec, 5, seed=7, multiple=16)
    for g in probe:
        assert model.predict_ms(spec, g) == pytest.approx(2.0 * law(g), rel=1e-3)
    assert all(v >= 0 for v in model.coef.values())
    model.save(tmp_path / "m.json")
    again = LatencyModel.load(tmp_path / "m.json")
    assert again.predict_ms(spec, probe[0]) == pytest.approx(model.predict_ms(spec, probe[0]))
    (tmp_path / "bad.json").write_text('{"format": 99}')
    with pytest.raises(ValueError, match="format"):
        LatencyModel.load(tmp_path / "bad.json")


def test_calibration_measures_real_students_with_onnxruntime(vgg):
    model, spec = vgg
    fit = calibrate(model, spec, load_profile("x86_host"), 1.0, students=8, rounds=3)
    assert fit.fitted_on == 9  # the teacher and eight students
    assert fit.rows[0]["ratio"] == pytest.approx(1.0)
    assert all(r["ratio"] > 0 for r in fit.rows)
    # a much narrower student is predicted faster than the teacher
    keys = [g.key for g in spec.shrinkable]
    narrow = Genome(width={k: 0.125 for k in keys})
    assert fit.predict_ms(spec, narrow) < fit.predict_ms(spec, Genome())


def test_snap_rounds_to_the_device_multiple():
    assert snap(0.5, 32, 16) == 0.5
    assert snap(30 / 32, 32, 16) == 1.0  # 30 channels run slower than 32 here
    assert snap(13 / 32, 32, 16) == 0.5  # within a quarter block of 16
    assert snap(10 / 32, 32, 16) == 8 / 32  # well below a block: a power of two
    assert snap(3 / 32, 32, 16) == 4 / 32
    assert snap(100 / 128, 128, 16) == 96 / 128
    assert snap(0.3, 10, 16) == 0.3  # a group smaller than the block keeps its count
    assert snap(0.33, 64) == 21 / 64  # no multiple: whole channels


def test_the_clamp_keeps_every_proposal_within_the_predicted_budget(vgg):
    _, spec = vgg
    predict = _padded_predictor(spec)

    caps = {"latency_ms": 10 / 3}
    clamped = 0
    for g in calibration_genomes(spec, 40, seed=3):
        out = fit_genome(spec, g, caps, latency=predict, multiple=16)
        assert out is not None
        assert predict(out) <= LATENCY_MARGIN * caps["latency_ms"]
        assert fits(spec, out, caps, latency=predict)
        for grp in spec.shrinkable:
            n = round(out.width.get(grp.key, 1.0) * grp.channels)
            assert n % 16 == 0 or n in (1, 2, 4, 8), (grp.key, n)
        clamped += out.key() != snap_genome(spec, g, 16).key()
    assert clamped > 10  # most random proposals are over a 3× budget and were scaled
    # without a predictor a latency cap cannot be checked before measuring: it only filters
    assert fits(spec, Genome(), caps)


def test_latency_matched_seeds_are_the_largest_students_within_the_budget(vgg):
    model, spec = vgg
    predict = _padded_predictor(spec)

    caps = {"latency_ms": 2.0}
    seeds = width_seeds(model, spec, Genome(), caps, (2.0, 8.0), latency=predict, multiple=16)
    labels = [label for label, _ in seeds]
    assert any(lab.startswith("uniform latency") for lab in labels)
    assert any(lab.startswith("l1 latency") for lab in labels)
    assert all(predict(g) <= LATENCY_MARGIN * 2.0 for _, g in seeds)
    matched = dict(seeds)[next(lab for lab in labels if lab.startswith("uniform latency"))]
    # the latency-matched uniform seed is the widest uniform student in the budget
    assert all(
        spec.predict_params(matched) >= spec.predict_params(g)
        for lab, g in seeds
        if lab.startswith("uniform ")
    )
    # no predictor: the ladder alone, as before
    plain = width_seeds(model, spec, Genome(), caps, (2.0, 8.0))
    assert not any("latency" in lab for lab, _ in plain)


def test_group_sensitivity_sees_where_time_is_spent(vgg):
    _, spec = vgg
    keys = [g.key for g in spec.shrinkable]
    first, last = spec.shrinkable[0], spec.shrinkable[-1]

    def by_resolution(g: Genome) -> float:  # time grows with output positions per MAC
        return sum(c.macs * math.sqrt(c.pixels) for c in spec.costs(g))

    macs = group_sensitivity(spec, keys, None)
    timed = group_sensitivity(spec, keys, by_resolution)
    assert all(0 <= v <= 1 for v in (*macs.values(), *timed.values()))
    # weighting by resolution moves the share towards the early layers
    assert timed[first.key] / timed[last.key] > macs[first.key] / macs[last.key]


def test_fill_scales_a_proposal_under_the_budget_up_to_it(vgg):
    _, spec = vgg
    predict = _padded_predictor(spec)

    caps = {"latency_ms": 5.0}
    keys = [g.key for g in spec.shrinkable]
    small = Genome(width={k: 0.125 for k in keys})
    assert fit_genome(spec, small, caps, latency=predict, multiple=16) == small
    grown = fit_genome(spec, small, caps, latency=predict, multiple=16, fill=True)
    assert grown is not None
    assert predict(small) < predict(grown) <= LATENCY_MARGIN * 5.0
    # the shape is kept: no group is narrower than it was
    assert all(grown.width[k] >= small.width[k] for k in keys)


def test_under_a_latency_budget_the_ladder_stops_near_it(vgg):
    model, spec = vgg
    predict = _padded_predictor(spec)
    caps = {"latency_ms": 2.0}
    ratios = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    seeds = width_seeds(model, spec, Genome(), caps, ratios, latency=predict, multiple=16)
    # rungs far faster than asked are left out: every seed spends at least half the budget
    assert seeds and all(predict(g) >= NEAR_BUDGET * 2.0 for _, g in seeds)
    # without the budget the same ladder goes all the way down
    sizes = width_seeds(model, spec, Genome(), {}, ratios, multiple=16)
    assert len(sizes) > len(seeds)
    assert min(predict(g) for _, g in sizes) < NEAR_BUDGET * 2.0
    # in a target run the rungs must come closer still; the latency-matched students stay
    near = width_seeds(
        model,
        spec,
        Genome(),
        caps,
        ratios,
        latency=predict,
        multiple=16,
        near_budget=NEAR_BUDGET_TARGET,
    )
    rungs = [g for label, g in near if "latency" not in label]
    assert all(predict(g) >= NEAR_BUDGET_TARGET * 2.0 for g in rungs)
    assert len(near) < len(seeds)
    assert [lab for lab, _ in near if "latency" in lab] == [
        lab for lab, _ in seeds if "latency" in lab
    ]


@pytest.mark.parametrize("device_speed", [0.7, 1.4])
def test_a_measured_match_walks_from_the_prediction_to_the_budget(vgg, device_speed):
    # The device runs students at `device_speed` times what the predictor says (a cautious
    # prediction, coarse channel steps): the latency-matched seed is then checked by timing
    # and moved to the widest student of its family (channels snapped to the device's
    # block, as wherever latency steers) that measures within the budget.
    model, spec = vgg
    predict = _padded_predictor(spec)
    timed: list[str] = []

    def measure(g: Genome) -> float:
        timed.append(g.key())
        return device_speed * predict(g)

    caps = {"latency_ms": 4.0}
    plain = dict(width_seeds(model, spec, Genome(), caps, (2.0,), latency=predict, multiple=16))
    seeds = dict(
        width_seeds(
            model, spec, Genome(), caps, (2.0,), latency=predict, multiple=16, measured=measure
        )
    )
    matched = next(g for lab, g in seeds.items() if lab.startswith("uniform latency"))
    before = next(g for lab, g in plain.items() if lab.startswith("uniform latency"))
    budget = MEASURED_MARGIN * caps["latency_ms"]
    assert timed and measure(matched) <= budget
    make = uniform_genome(spec, Genome(), 16)
    wider = [make(q) for q in torch.linspace(0.05, 1.0, 96).tolist()]
    wider = [g for g in wider if spec.predict_params(g) > spec.predict_params(matched)]
    # the next wider student of the family measures over the budget
    assert wider and measure(wider[0]) > budget
    if device_speed < 1:  # faster than predicted: a wider student than the prediction's
        assert spec.predict_params(matched) > spec.predict_params(before)
    else:  # slower: a narrower one
        assert spec.predict_params(matched) < spec.predict_params(before)


def test_a_structure_with_removals_gets_its_latency_matched_seeds_alone(vgg):
    # A latency target beyond every full-depth student leaves the start's ladder empty; the
    # shrinkage stage then prunes each carried structure with removals until it is fast
    # enough: no ladder of ratios, only its latency-matched uniform, global-L1,
    # L1-per-millisecond and time-shaped students, which keep the removal and fill the
    # predicted budget.
    model, spec = vgg
    predict = _padded_predictor(spec)
    unit = spec.removable[-1].name
    structure = Genome(keep={unit: False})
    caps = {"latency_ms": 3.0}
    seeds = dict(width_seeds(model, spec, structure, caps, (), latency=predict, multiple=16))
    assert {lab.split(" ")[0] for lab in seeds} <= {"uniform", "l1", "l1/ms", "uniform/√ms"}
    assert {"uniform", "l1"} <= {lab.split(" ")[0] for lab in seeds}
    assert all(" latency " in lab for lab in seeds)
    for g in seeds.values():
        assert g.keep == {unit: False}
        assert predict(g) <= caps["latency_ms"]
        assert predict(g) > 0.5 * caps["latency_ms"]  # near the budget, not far under it
    # without a latency cap there is nothing to match, and no ladder was asked for
    assert width_seeds(model, spec, structure, {}, (), latency=predict) == []
    assert width_seeds(model, spec, structure, caps, ()) == []


def test_the_per_millisecond_seed_cuts_where_time_is_spent(vgg):
    model, spec = vgg
    predict = _padded_predictor(spec)
    caps = {"latency_ms": 3.0}
    seeds = dict(width_seeds(model, spec, Genome(), caps, (), latency=predict, multiple=8))
    assert {"uniform latency", "l1 latency", "l1/ms latency"} <= {
        label.rsplit(" ", 1)[0] for label in seeds
    }
    by_family = {label.rsplit(" ", 1)[0]: g for label, g in seeds.items()}
    plain, per_ms = by_family["l1 latency"], by_family["l1/ms latency"]
    assert predict(per_ms) <= LATENCY_MARGIN * 3.0
    # the time a channel costs: early (high-resolution) groups cost more per channel, so the
    # per-millisecond seed keeps fewer of them and more of the late, cheap ones
    share = group_sensitivity(spec, [g.key for g in spec.shrinkable], predict)
    groups = spec.shrinkable
    cost = {g.key: share[g.key] / g.channels for g in groups}
    dear = max(groups, key=lambda g: cost[g.key]).key
    cheap = min(groups, key=lambda g: cost[g.key]).key
    assert per_ms.width[dear] < plain.width[dear]
    assert per_ms.width[cheap] > plain.width[cheap]


def test_the_time_shaped_seed_widens_cheap_groups_and_thins_dear_ones(vgg):
    # uniform/√ms: a width multiplier per group, inversely proportional to the square root
    # of a channel's time cost, filled to the same predicted budget as the uniform seed
    model, spec = vgg
    predict = _padded_predictor(spec)
    caps = {"latency_ms": 3.0}
    seeds = dict(width_seeds(model, spec, Genome(), caps, (), latency=predict, multiple=8))
    by_family = {label.rsplit(" ", 1)[0]: g for label, g in seeds.items()}
    uniform, shaped = by_family["uniform latency"], by_family["uniform/√ms latency"]
    assert predict(shaped) <= LATENCY_MARGIN * 3.0
    share = group_sensitivity(spec, [g.key for g in spec.shrinkable], predict)
    cost = {g.key: share[g.key] / g.channels for g in spec.shrinkable}
    dear = max(spec.shrinkable, key=lambda g: cost[g.key]).key
    cheap = min(spec.shrinkable, key=lambda g: cost[g.key]).key
    assert shaped.width[cheap] > uniform.width[cheap]
    assert shaped.width[dear] <= uniform.width[dear]
    assert shaped.width[dear] < shaped.width[cheap]
    # the shape alone: 1 for the cheapest group, less for dearer ones, none of them zero
    shape = time_widths(spec, Genome(), predict)
    assert max(shape.values()) == pytest.approx(1.0)
    assert shape[cheap] == pytest.approx(1.0)
    assert 0 < shape[dear] < 1
