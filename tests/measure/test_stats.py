"""MAC / parameter / byte / peak-memory counts checked against hand computations."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from hwcompress.arch import Genome, build_spec
from hwcompress.export import export_fp32
from hwcompress.measure.counting import Step, peak_live_bytes
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.stats import analyze_module


def test_tiny_net_counts_by_hand(tiny_net):
    s = analyze_module(tiny_net, (1, 1, 8, 8))
    # conv 256·9 = 2304, bn folded into the conv (0), max pooling does no MACs, linear 640
    assert s.macs == 2304 + 640
    # the conv has a bias, so the folded batch-norm adds no parameters
    assert s.params == 40 + 650
    assert s.weight_bytes == (40 + 650) * 4
    # input 256 B + conv out 1024 B live together; bn/relu in place; pool 256 B + conv 1024 B.
    assert s.peak_activation_bytes == 1280
    per_layer = {layer.name: layer for layer in s.layers}
    assert per_layer["conv"].macs == 2304
    assert per_layer["fc"].params == 650


def test_weight_bytes_at_per_layer_bits(tiny_net):
    s = analyze_module(tiny_net, (1, 1, 8, 8), weight_bits={"conv": 8, "fc": 4})
    # conv: 36 weights · 1 B + 4 fp32 biases; bn folded; fc: 640 · 0.5 B + 10 · 4 B
    assert s.weight_bytes == (36 + 16) + (320 + 40)
    s8 = analyze_module(tiny_net, (1, 1, 8, 8), default_weight_bits=8)
    assert s8.weight_bytes == (36 + 16) + (640 + 40)


def test_activation_bits_scale_peak(tiny_net):
    s = analyze_module(tiny_net, (1, 1, 8, 8), activation_bits=8)
    assert s.peak_activation_bytes == 1280 // 4


def test_residual_add_keeps_input_alive(tiny_residual):
    s = analyze_module(tiny_residual, (1, 2, 4, 4))
    assert s.macs == 32 * 2 * 9  # the add does no multiply-accumulates
    assert s.params == 36
    # input (128 B) stays alive for the add: input + conv out + sum = 384 B
    assert s.peak_activation_bytes == 384


def test_liveness_frees_dead_tensors():
    steps = [
        Step("x", 100),
        Step("a", 50, ("x",)),
        Step("b", 10, ("a",)),
        Step("v", 0, ("b",), alias_of="b"),
        Step("c", 5, ("v",)),
    ]
    # x+a = 150 at step a; then x freed; a+b = 60; b+c = 15
    assert peak_live_bytes(steps, ["c"]) == 150


def test_onnx_counts_match_module_with_bn_folded(tiny_net, tmp_path):
    path = export_fp32(tiny_net, (1, 1, 8, 8), tmp_path / "tiny.onnx")
    s = analyze_onnx(path)
    # The exporter folds batch-norm into the conv, as the module count does.
    assert s.macs == 2304 + 640
    assert s.params == 40 + 650
    assert s.weight_bytes == (40 + 650) * 4
    assert s.peak_activation_bytes == 1280
    assert s.input_shape == (1, 1, 8, 8)


def test_residual_onnx_matches_module(tiny_residual, tmp_path):
    path = export_fp32(tiny_residual, (1, 2, 4, 4), tmp_path / "res.onnx")
    s = analyze_onnx(path)
    assert (s.macs, s.params, s.peak_activation_bytes) == (576, 36, 384)


class _Counted(nn.Module):
    """conv(no bias)→bn folds (adds 4 biases); bn after the add does not (2·4 params)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.bn1(self.conv(x)) + x)
        return self.fc(torch.flatten(y, 1))


def test_batchnorm_folds_only_after_a_conv(tmp_path):
    torch.manual_seed(0)
    model = _Counted().eval()
    for bn in (model.bn1, model.bn2):  # trained-looking statistics, so nothing is deduplicated
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    s = analyze_module(model, (1, 4, 4, 4))
    assert s.params == 144 + 4 + 8 + 195
    assert s.macs == 16 * 4 * 36 + 64 + 64 * 3  # conv, the unfolded bn, fc
    assert s.weight_bytes == (144 + 4 + 8 + 195) * 4
    # 8-bit weights: the unfolded bn is a depthwise 1×1 conv, scale at 8 bits, shift at 32
    s8 = analyze_module(model, (1, 4, 4, 4), default_weight_bits=8)
    assert s8.weight_bytes == 144 + 4 * 4 + (4 + 4 * 4) + (192 + 3 * 4)
    o = analyze_onnx(export_fp32(model, (1, 4, 4, 4), tmp_path / "c.onnx"))
    assert (o.params, o.macs, o.weight_bytes) == (s.params, s.macs, s.weight_bytes)
    spec = build_spec(model, (1, 4, 4, 4))
    assert spec.predict_params(Genome()) == s.params
    assert spec.predict_macs(Genome()) == s.macs


def test_torchvision_resnet18_macs_match_published_figure():
    # torchvision documents resnet18 at 1.81 GFLOPS (= GMACs) for 224×224 input.
    model = torchvision.models.resnet18().eval()
    s = analyze_module(model, (1, 3, 224, 224))
    conv_linear = sum(layer.macs for layer in s.layers if layer.kind in ("Conv2d", "Linear"))
    assert abs(conv_linear / 1e9 - 1.81) < 0.01
    assert abs(s.macs / 1e9 - 1.81) < 0.01  # nothing else counts: batch-norms fold, pools add
    # PyTorch's count (11,689,512) less one parameter per batch-norm channel: deployed, each
    # batch-norm's scale folds into its conv's weights and its shift becomes the conv's bias
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert s.params == sum(p.numel() for p in model.parameters()) - bn_channels == 11_684_712


def test_built_student_is_counted_without_a_second_trace(tiny_net, monkeypatch):
    """A built student is a GraphModule: it is counted as it is, with the figures a fresh
    trace of the same computation gives."""
    from hwcompress.arch import build_student

    spec = build_spec(tiny_net, (1, 1, 8, 8))
    key = spec.shrinkable[0].key
    student = build_student(tiny_net, Genome(width={key: 0.5}), (1, 1, 8, 8), spec=spec)

    class Wrapper(nn.Module):  # traced through: the GraphModule is not a leaf
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    fresh = analyze_module(Wrapper(student), (1, 1, 8, 8))
    import hwcompress.measure.stats as stats_module

    traces: list[nn.Module] = []
    real_trace = stats_module.trace
    monkeypatch.setattr(stats_module, "trace", lambda m: traces.append(m) or real_trace(m))
    counted = analyze_module(student, (1, 1, 8, 8))
    assert traces == []
    assert (counted.params, counted.macs, counted.peak_activation_bytes) == (
        fresh.params,
        fresh.macs,
        fresh.peak_activation_bytes,
    )
    assert counted.params < analyze_module(tiny_net, (1, 1, 8, 8)).params
