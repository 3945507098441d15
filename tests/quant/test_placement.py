"""Where quantizers go, and what onnxruntime makes of the exported graph (tiny real models)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwcompress.data import DataConfig, load_data
from hwcompress.export import export_fp32
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.ort_graph import dequantize_left, kernel_counts, optimized_graph
from hwcompress.measure.stats import analyze_module
from hwcompress.models import build_builtin
from hwcompress.quant.convert import calibrate, clamp_to_activation_ceilings, quantize_model
from hwcompress.quant.export import (
    check_parity,
    export_qcdq,
    onnx_accuracy,
    optimisation_agreement,
)
from hwcompress.train import TrainConfig, evaluate, train_classifier

pytestmark = pytest.mark.onnx


class DenseBlock(nn.Module):
    """DenseNet's pattern: batch-norm after a concat, so no conv precedes it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.branch = nn.Conv2d(8, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.trans = nn.Conv2d(16, 12, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([x, self.branch(x)], 1)
        x = self.trans(self.relu(self.norm(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def _optimized(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return optimized_graph(so, path, "CPUExecutionProvider")


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(train_limit=600))


def test_quantizers_go_after_activations_not_around_pooling():
    q = quantize_model(build_builtin("vgg"))
    quantizers = {
        n: m for n, m in q.named_children() if n.startswith("act_quant_")
    }  # input + one after every conv's ReLU + one after the global pool
    convs = sum(isinstance(m, nn.Conv2d) for m in q.modules())
    assert len(quantizers) == 1 + convs + 1
    nodes = {n.name: n for n in q.graph.nodes}
    for node in q.graph.nodes:
        if node.op != "call_module":
            continue
        sub = q.get_submodule(str(node.target))
        if isinstance(sub, nn.MaxPool2d):  # reads a quantizer, feeds a conv directly
            assert str(node.args[0].target).startswith("act_quant_")
            assert all(isinstance(q.get_submodule(str(u.target)), nn.Conv2d) for u in node.users)
        if isinstance(sub, nn.ReLU):  # every ReLU's only user is its quantizer
            (user,) = node.users
            assert str(user.target).startswith("act_quant_")
    signed = sorted(n for n, m in quantizers.items() if m.act_quant.is_signed)
    assert signed == ["act_quant_0", f"act_quant_{convs + 1}"]  # the input and the pooled mean
    (logits,) = nodes["output"].args
    assert logits.target == "classifier"  # the logits stay float


def test_batchnorm_after_concat_becomes_an_exact_depthwise_conv(data, tmp_path):
    torch.manual_seed(0)
    model = DenseBlock()
    train_classifier(model, data, TrainConfig(epochs=3))
    model.eval()
    q = quantize_model(model, default_weight_bits=8)
    # the norm is now a depthwise 1x1 conv, quantized like the other convs
    norm = q.get_submodule("norm")
    assert isinstance(norm, nn.Conv2d) and norm.groups == 16
    calibrate(q, data.train)
    path = export_qcdq(q, data.input_shape, tmp_path / "dense.onnx")
    kernels = kernel_counts(_optimized(path))
    assert kernels.get("com.microsoft:QLinearConv") == 4  # stem, branch, norm, trans
    assert not {k for k in kernels if k.split(":")[-1] in ("Conv", "FusedConv", "Gemm")}
    assert check_parity(q, path, data.val) >= 0.99
    assert abs(onnx_accuracy(path, data.val) - evaluate(model, data.val)) < 0.05


def _trained_int8(name, data, tmp_path):
    """A built-in model trained briefly, its calibrated int8 copy, the file and the graph
    onnxruntime optimised it into."""
    torch.manual_seed(0)
    model = build_builtin(name)
    train_classifier(model, data, TrainConfig(epochs=3))
    q = calibrate(quantize_model(model.eval()), data.train)
    path = export_qcdq(q, data.input_shape, tmp_path / f"{name}.onnx")
    return model, q, path, _optimized(path)


def test_conv_relu_pool_chain_runs_in_integers_end_to_end(data, tmp_path):
    model, _, path, graph = _trained_int8("vgg", data, tmp_path)
    ops = [n.op_type for n in graph.node]
    assert "Relu" not in ops  # fused into the integer convs
    assert ops.count("QLinearConv") == 6 and "QGemm" in ops
    assert "QLinearGlobalAveragePool" in ops
    assert dequantize_left(graph) == 0  # integers from the input quantizer to the logits
    assert ops.count("QuantizeLinear") == 1
    # one activation-memory count: the int8 file as the search counts the int8 student
    fp32 = export_fp32(model, data.input_shape, tmp_path / "vgg32.onnx")
    int8_peak = analyze_onnx(path).peak_activation_bytes
    assert (
        int8_peak
        == analyze_module(model, data.input_shape, activation_bits=8).peak_activation_bytes
    )
    assert int8_peak * 4 == analyze_onnx(fp32).peak_activation_bytes


def test_residual_net_agrees_with_optimisations_on_and_off(data, tmp_path):
    _, q, path, graph = _trained_int8("resnet", data, tmp_path)
    ops = [n.op_type for n in graph.node]
    assert ops.count("QLinearAdd") == 6 and dequantize_left(graph) == 0
    assert optimisation_agreement(path, data.val) >= 0.99
    assert check_parity(q, path, data.val) >= 0.99


class SqueezeExcite(nn.Module):
    """MobileNetV3's pattern: Hardswish between convs, a sigmoid gate multiplied in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.act = nn.Hardswish()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(8, 4, 1)
        self.fc2 = nn.Conv2d(4, 8, 1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(self.squeeze(x)))))
        x = self.conv2(x * gate)
        return self.head(x.mean((2, 3)))


def test_every_quantized_layer_reads_quantized_values_after_float_activations(tmp_path):
    torch.manual_seed(0)
    model = SqueezeExcite().eval()
    q = quantize_model(model)
    for node in q.graph.nodes:
        if node.op == "call_module" and isinstance(q.get_submodule(str(node.target)), nn.Conv2d):
            (arg,) = node.args  # every conv reads a quantizer, also after Hardswish and the gate
            assert str(arg.target).startswith("act_quant_"), node.name
    calibrate(q, [(torch.randn(16, 1, 8, 8),) for _ in range(2)])
    path = export_qcdq(q, (1, 1, 8, 8), tmp_path / "se.onnx")
    kernels = kernel_counts(_optimized(path))
    assert kernels.get("com.microsoft:QLinearConv") == 4
    assert not {k for k in kernels if k.split(":")[-1] in ("Conv", "FusedConv")}


def test_a_relu6_range_grown_past_six_is_lowered_so_the_clip_fuses(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU6(),
        nn.Conv2d(4, 4, 3),
        nn.ReLU6(),
        nn.Flatten(),
        nn.Linear(64, 3),
    ).eval()
    q = calibrate(quantize_model(model), [(torch.randn(8, 1, 8, 8) * 10,)])
    ranges = {
        name: m.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value
        for name, m in q.named_children()
        if name.startswith("act_quant") and not m.act_quant.is_signed
    }
    assert len(ranges) == 2 and all(float(v) <= 6.0 for v in ranges.values())
    with torch.no_grad():  # what a QAT run can learn: ranges past the activation's ceiling
        for v in ranges.values():
            v.fill_(9.0)
    grown = _optimized(export_qcdq(q, (1, 1, 8, 8), tmp_path / "grown.onnx"))
    assert dequantize_left(grown) > 0  # float convs and clips between quantizers
    assert clamp_to_activation_ceilings(q) == 2
    assert all(float(v) == 6.0 for v in ranges.values())
    graph = _optimized(export_qcdq(q, (1, 1, 8, 8), tmp_path / "clamped.onnx"))
    ops = [n.op_type for n in graph.node]
    assert "Clip" not in ops and ops.count("QLinearConv") == 2
    assert dequantize_left(graph) == 0
    assert clamp_to_activation_ceilings(q) == 0
