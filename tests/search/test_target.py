"""Targets (``--target``), size caps and the clamp that keeps proposals within them."""

from __future__ import annotations

import pytest
import torch

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.errors import HwCompressError
from hwcompress.hardware import ConstraintMatrix, load_profile
from hwcompress.measure.stats import analyze_module
from hwcompress.models.builtin import build_builtin
from hwcompress.search.config import SearchConfig
from hwcompress.search.target import (
    fit_genome,
    parse_target,
    size_caps,
    with_headroom,
    with_targets,
)

SHAPE = (1, 1, 8, 8)


@pytest.fixture
def resnet():
    """The built-in residual teacher (random weights): residual adds tie channel groups."""
    torch.manual_seed(0)
    return build_builtin("resnet").eval()


TEACHER = {
    "params": 1000.0,
    "weight_bytes": 4000.0,
    "macs": 1e6,
    "latency_ms": 2.0,
    "unsupported_bits": 0,
}


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("params=10x", 100.0),
        ("weight_bytes=2KiB", 2048.0),
        ("macs=0.5M", 5e5),
        ("latency_ms=0.5", 0.5),
        ("params=250", 250.0),
        ("macs = 2.5x", 4e5),
    ],
)
def test_targets_parse(text, bound):
    assert parse_target(text).bound(TEACHER) == pytest.approx(bound)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flops=10x", "name one of"),
        ("params", "name one of"),
        ("params=0.5x", "≥ 1"),
        ("params=abcx", "≥ 1"),
        ("params=-3", "cannot read"),
        ("params=0", "positive"),
        ("weight_bytes=3 parsecs", "cannot read"),
        ("params=infx", "≥ 1"),
    ],
)
def test_bad_targets_say_what_to_write(text, message):
    with pytest.raises(HwCompressError, match=message) as err:
        parse_target(text)
    assert "params=10x" in str(err.value)


def test_targets_are_rows_and_caps():
    matrix = ConstraintMatrix.from_profile(load_profile("x86_host"))
    m = with_targets(matrix, (parse_target("params=10x"), parse_target("macs=2x")), TEACHER)
    assert m.rows[-2:] == ("target_params", "target_macs")
    assert m.feasible({**TEACHER, "params": 100, "macs": 5e5, "peak_activation_bytes": 0})
    assert not m.feasible({**TEACHER, "params": 101, "macs": 5e5, "peak_activation_bytes": 0})
    caps = size_caps(m)
    assert caps["params"] == 100 and caps["macs"] == 5e5
    assert "latency_ms" not in caps  # not predictable from the spec


def test_headroom_tightens_latency_rows_alone():
    matrix = ConstraintMatrix.from_profile(load_profile("x86_host"))
    targets = (parse_target("params=10x"), parse_target("latency_ms=4x"))
    m = with_targets(matrix, targets, TEACHER)
    aimed = with_headroom(m, 0.1)
    caps = size_caps(aimed, ("params", "latency_ms"))
    assert caps["latency_ms"] == pytest.approx(0.45)  # 2 ms / 4, 10 % under
    assert caps["params"] == 100  # sizes are exact: no headroom
    row = aimed.rows.index("target_latency_ms")
    assert "aimed at 0.45 ms" in aimed.descriptions[row]
    x = {**TEACHER, "params": 50, "macs": 5e5, "peak_activation_bytes": 0}
    assert m.feasible({**x, "latency_ms": 0.48}) and not aimed.feasible({**x, "latency_ms": 0.48})
    assert aimed.feasible({**x, "latency_ms": 0.44})
    assert with_headroom(m, 0.0) is m


def test_headroom_is_checked_and_older_runs_resume_without_it(tmp_path):
    with pytest.raises(HwCompressError, match="latency_headroom"):
        SearchConfig(profile="x86_host", latency_headroom=0.95)
    with pytest.raises(HwCompressError, match="latency_headroom"):
        SearchConfig(profile="x86_host", latency_headroom=-0.1)
    stored = SearchConfig(profile="x86_host").to_dict()
    assert stored["latency_headroom"] == 0.1
    del stored["latency_headroom"]  # a run written before the setting existed
    assert SearchConfig.from_dict(stored).latency_headroom == 0.0


def test_fit_genome_scales_widths_until_the_student_fits(resnet):
    spec = build_spec(resnet, SHAPE)
    full = spec.predict_params(Genome())
    caps = {"params": full / 4}
    genome = Genome(width={spec.shrinkable[0].key: 0.5})
    fitted = fit_genome(spec, genome, caps)
    assert fitted is not None and fitted.keep == genome.keep
    predicted = spec.predict_params(fitted)
    assert predicted <= 0.98 * full / 4
    # the largest student that fits: a little wider would not
    assert predicted > full / 4 * 0.6
    built = build_student(resnet, fitted, SHAPE, spec=spec)
    assert analyze_module(built, SHAPE).params == predicted
    assert fit_genome(spec, Genome(), {"params": 1.1 * full}) == Genome()  # fits already
    assert fit_genome(spec, Genome(), {"params": 1}) is None  # cannot
