from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hwcompress.train.augment import random_shift, shift_for


def _moves(x: torch.Tensor, pixels: int) -> list[torch.Tensor]:
    padded = F.pad(x, (pixels,) * 4)
    h, w = x.shape[-2:]
    return [
        padded[..., dy : dy + h, dx : dx + w]
        for dy in range(2 * pixels + 1)
        for dx in range(2 * pixels + 1)
    ]


def test_each_image_is_moved_by_at_most_the_shift():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 6) + 1.0  # no zeros: a move shows as zeros shifted in
    out = random_shift(x, 2)
    assert out.shape == x.shape
    seen = set()
    for i in range(len(x)):
        matches = [k for k, m in enumerate(_moves(x[i], 2)) if torch.equal(m, out[i])]
        assert len(matches) == 1, i
        seen.add(matches[0])
    assert len(seen) > 10  # the moves differ between images (25 possible)
    assert torch.equal(random_shift(x, 0), x)


@pytest.mark.parametrize(
    ("shape", "pixels"),
    [
        ((1, 1, 8, 8), 1),
        ((1, 1, 28, 28), 2),
        ((1, 3, 224, 224), 14),
        ((1, 1, 4, 4), 0),  # too small to move
        ((1, 3, 100), 0),  # not an image
    ],
)
def test_the_final_shift_is_a_sixteenth_of_the_side(shape, pixels):
    assert shift_for(shape) == pixels
    x = torch.rand(shape)
    assert random_shift(x, 1).shape == x.shape
