"""Augmentation for distillation: views both the student and the teacher see.

A student distilled on the training images alone fits the teacher's logits on those images
and nothing around them; shown shifted copies, with the teacher's logits computed on the
same copies (a *consistent* teacher, Beyer et al., "Knowledge distillation: A good teacher
is patient and consistent", CVPR 2022), it learns the teacher's function near the data too.
On digits (8×8) a searched student at 24× fewer parameters than the teacher scored 97.7 %
on the test split after 20 epochs on the cached logits and 98.7 % (mean of 3 seeds) after 60
epochs of one-pixel shifts, the teacher 98.6 %.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Each image of the batch ``x`` (N, C, H, W) moved by up to ``pixels`` in each
    direction, independently, with zeros shifted in (the size is kept)."""
    if pixels <= 0 or x.dim() != 4:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    dy = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :] + dy[:, None]  # (n, h)
    cols = torch.arange(w, device=x.device)[None, :] + dx[:, None]  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def shift_for(input_shape: tuple[int, ...]) -> int:
    """The shift a final distillation uses for inputs of ``input_shape`` (N, C, H, W): a
    sixteenth of the shorter side, at least one pixel (8×8: 1, 28×28: 2, 224×224: 14); none
    for images under 8 pixels a side or inputs that are not images."""
    if len(input_shape) != 4 or min(input_shape[-2:]) < 8:
        return 0
    return max(1, round(min(input_shape[-2:]) / 16))
