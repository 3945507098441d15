from __future__ import annotations

import math

from hwcompress.arch import Genome, build_spec
from hwcompress.models import build_builtin
from hwcompress.search.policies import WIDTH_CHOICES
from hwcompress.search.stages import grid_widths


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
