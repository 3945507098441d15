"""Kernel-wise variational pruning: real kernel surgery, on tiny models and digits."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from hwcompress.data import DataConfig, load_data
from hwcompress.export import export_fp32
from hwcompress.models import build_builtin
from hwcompress.prune import (
    KernelGate,
    KernelPruneConfig,
    attach_gates,
    crop_kernels,
    detach_gates,
    kernel_masks,
    variational_kernel_prune,
)
from hwcompress.train import TrainConfig, train_classifier


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()


@pytest.mark.parametrize(("size", "kept"), [((3, 1), (slice(None), 1)), ((1, 3), (1, slice(None)))])
def test_crop_equals_the_masked_kernel_and_keeps_shapes(size, kept):
    net = _net()
    x = torch.randn(2, 2, 9, 9)
    masked = _net()
    mask = torch.zeros(3, 3)
    mask[kept] = 1
    with torch.no_grad():
        masked[0].weight.mul_(mask)
    changed = crop_kernels(net, {"0": size})
    assert changed == {"0": f"3×3 → {size[0]}×{size[1]}"}
    assert net[0].kernel_size == size and net[0].weight.shape[2:] == size
    torch.testing.assert_close(net(x), masked(x))  # same function, fewer weights


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_a_crop_keeps_dilation_groups_and_padding_mode(padding_mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode=padding_mode).eval()
    masked = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode=padding_mode).eval()
    masked.load_state_dict(conv.state_dict())
    with torch.no_grad():  # keep only the middle row of each kernel
        masked.weight[:, :, [0, 2], :] = 0
    net = nn.Sequential(conv)
    crop_kernels(net, {"0": (1, 3)})
    new = net[0]
    assert (new.dilation, new.groups, new.padding_mode) == ((2, 2), 2, padding_mode)
    assert new.padding == (0, 2)  # one removed row each side, spanning two pixels
    x = torch.randn(1, 4, 9, 9)
    torch.testing.assert_close(net(x), masked(x))


def test_cropped_kernels_reach_the_onnx_file(tmp_path):
    net = _net()
    before = sum(p.numel() for p in net.parameters())
    crop_kernels(net, {"0": (1, 1), "2": (5, 1)})
    assert sum(p.numel() for p in net.parameters()) == before - 4 * 2 * 8 - 4 * 4 * 20
    path = export_fp32(net, (1, 2, 9, 9), tmp_path / "c.onnx")
    shapes = [
        list(next(a.ints for a in n.attribute if a.name == "kernel_shape"))
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "Conv"
    ]
    assert shapes == [[1, 1], [5, 1]]


def test_masks_need_a_whole_band_unimportant():
    net = _net()
    gates = attach_gates(net)
    assert set(gates) == {"0", "2"}
    with torch.no_grad():
        gates["0"].rho.fill_(-5.0)
        gates["0"].rho[:, 0] = 5.0  # left column noisy, right column not: nothing to crop
        gates["2"].rho.fill_(5.0)
        gates["2"].rho[2, 2] = -5.0  # only the centre matters: 5×5 → 1×1
    assert kernel_masks(gates, 0.5) == {"0": (3, 3), "2": (1, 1)}
    # by rank: the left-column band of "0" is the noisiest after "2"'s two bands
    assert kernel_masks(gates, 0.5, share=0.75) == {"0": (3, 1), "2": (1, 1)}
    # no σ passes a threshold of 2: the noisiest quarter of the bands goes (rows of "2")
    assert kernel_masks(gates, 2.0, share=0.25) == {"0": (3, 3), "2": (1, 5)}
    assert kernel_masks({n: g.sigma for n, g in gates.items()}, 0.5) == kernel_masks(gates, 0.5)
    detach_gates(net)
    assert isinstance(net[0], nn.Conv2d)


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(0)
    data = load_data(DataConfig(train_limit=400))
    teacher = build_builtin("vgg")
    train_classifier(teacher, data, TrainConfig(epochs=4))
    return teacher.eval(), data


def test_strong_kl_crops_kernels_weak_kl_keeps_them(digits, tmp_path):
    teacher, data = digits
    import copy

    kept = copy.deepcopy(teacher)
    res = variational_kernel_prune(kept, teacher, data, KernelPruneConfig(steps=20, beta=0.0))
    assert res.changed == {} and res.params_after == res.params_before

    pruned = copy.deepcopy(teacher)
    res = variational_kernel_prune(
        pruned, teacher, data, KernelPruneConfig(steps=60, beta=1e5, gate_lr=0.5)
    )
    assert res.changed and res.params_after < res.params_before
    assert sum(p.numel() for p in pruned.parameters()) == res.params_after
    assert not any(type(m).__name__ == "KernelGate" for m in pruned.modules())
    out = pruned(torch.zeros(data.input_shape))
    assert out.shape == (1, data.num_classes)
    path = export_fp32(pruned, data.input_shape, tmp_path / "p.onnx")
    kernels = {
        tuple(next(a.ints for a in n.attribute if a.name == "kernel_shape"))
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "Conv"
    }
    assert kernels & {(1, 1), (3, 1), (1, 3)}


@pytest.mark.parametrize(
    ("stride", "groups", "padding"),
    [(1, 1, (1, 1)), (2, 1, (1, 1)), (2, 4, (1, 1)), (1, 1, (0, 1))],
)
def test_gate_without_noise_is_the_conv(stride, groups, padding):
    """The training path (a sum of 1×1 convs of shifted inputs) computes the same conv."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, stride=stride, padding=padding, groups=groups, bias=True)
    gate = KernelGate(conv)
    with torch.no_grad():
        gate.rho.fill_(-60.0)  # σ ≈ 0: the noise is exactly 1
    x = torch.randn(3, 8, 9, 7)
    torch.testing.assert_close(gate.train()(x), conv(x), rtol=1e-5, atol=1e-5)
