"""Brevitas QAT, QCDQ export, integer kernels in onnxruntime and parity, on tiny models."""

from __future__ import annotations

import onnx
import pytest
import torch

from hwcompress.data import DataConfig, load_data
from hwcompress.hardware import load_profile
from hwcompress.measure.sources import measure_latency
from hwcompress.measure.stats import analyze_module
from hwcompress.models import build_builtin
from hwcompress.quant.convert import (
    QuantizationError,
    calibrate,
    check_bits,
    default_weight_range_bits,
    post_training_quantize,
    quantize_model,
    quantized_layers,
)
from hwcompress.quant.export import check_parity, export_checked, export_qcdq
from hwcompress.train import DistillConfig, TrainConfig, distill, evaluate, train_classifier

pytestmark = pytest.mark.onnx


@pytest.fixture(scope="module")
def teacher_and_data():
    torch.manual_seed(0)
    data = load_data(DataConfig(train_limit=600))
    teacher = build_builtin("vgg")
    train_classifier(teacher, data, TrainConfig(epochs=8))
    return teacher.eval(), data


@pytest.mark.parametrize("bits", [8, 4])
def test_qat_export_runs_integer_kernels_with_parity(teacher_and_data, tmp_path, bits):
    teacher, data = teacher_and_data
    q = calibrate(quantize_model(teacher, default_weight_bits=bits), data.train)
    assert set(quantized_layers(q).values()) == {min(bits, default_weight_range_bits())}
    distill(q, teacher, data, DistillConfig(epochs=2))  # QAT by distillation
    acc = evaluate(q, data.val)
    assert acc > 0.8
    path = export_qcdq(q, data.input_shape, tmp_path / "q.onnx")
    graph = onnx.load(str(path)).graph
    assert not {i.name for i in graph.input} & {i.name for i in graph.initializer}
    if bits < 8:  # sub-8-bit weights are exported with their clip ranges
        assert any(n.op_type == "Clip" for n in graph.node)
    lat = measure_latency(path, load_profile("x86_host"), runs=5, warmup=1, min_time_s=0)
    kernels = lat.integer_kernels
    assert sum(n for k, n in kernels.items() if k.endswith("QLinearConv")) == 6
    assert any(k.endswith("QGemm") for k in kernels)
    assert lat.float_compute_kernels == {}
    assert check_parity(q, path, data.val) >= 0.99


def test_post_training_int8_exports_checked_and_scored_in_onnxruntime(teacher_and_data, tmp_path):
    teacher, data = teacher_and_data
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    q = post_training_quantize(teacher, data.train_in_order(), weight_bits={"features.0.conv": 4})
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())  # untouched
    assert quantized_layers(q)["features.0.conv"] == 4
    assert set(quantized_layers(q).values()) == {4, min(8, default_weight_range_bits())}
    agreement, accuracy = export_checked(q, data.input_shape, tmp_path / "q.onnx", data.val)
    assert agreement is not None and agreement >= 0.99
    assert accuracy is not None and abs(accuracy - evaluate(q, data.val)) <= 0.02
    # without validation data the file is still written, and nothing is claimed about it
    assert export_checked(q, data.input_shape, tmp_path / "r.onnx", None) == (None, None)
    assert onnx.load(str(tmp_path / "r.onnx")).graph.node


def test_weight_bytes_count_true_bits(teacher_and_data):
    teacher, data = teacher_and_data
    full = analyze_module(teacher, data.input_shape)
    four = analyze_module(teacher, data.input_shape, default_weight_bits=4)
    conv_linear = sum(la.params for la in full.layers if la.kind in ("Conv2d", "Linear"))
    assert full.weight_bytes - four.weight_bytes == pytest.approx(
        conv_linear * 3.5, abs=conv_linear * 0.02
    )  # weights 4 → 0.5 bytes; biases stay


def test_bad_bit_widths_for_a_profile_are_refused():
    coral = load_profile("coral_edgetpu")
    check_bits({"conv": 8}, {"conv": 8}, coral.bits.weight, coral.bits.activation)
    with pytest.raises(QuantizationError, match="supports 8"):
        check_bits({"conv": 4}, {}, coral.bits.weight, coral.bits.activation)
    mcu = load_profile("stm32h7")
    with pytest.raises(QuantizationError, match="activation bit-width 4"):
        check_bits({"conv": 4}, {"conv": 4}, mcu.bits.weight, mcu.bits.activation)
    with pytest.raises(QuantizationError, match="choose from"):
        quantize_model(build_builtin("vgg"), default_weight_bits=12)


def test_onnx_weight_bytes_count_the_clip_ranges_of_sub_8_bit_weights(tmp_path):
    from torch import nn

    from hwcompress.measure.onnx_graph import analyze_onnx

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    bits = {"0": 4, "2": 8, "6": 2}
    q = quantize_model(model, weight_bits=bits).eval()
    q(torch.randn(2, 1, 8, 8))
    path = export_qcdq(q, (1, 1, 8, 8), tmp_path / "mixed.onnx")
    onnx_stats = analyze_onnx(path)
    torch_stats = analyze_module(model, (1, 1, 8, 8), weight_bits=bits)
    # 72 weights at 4 bits + 576 at 8 + 32 at 2, and 20 int32 biases
    assert onnx_stats.weight_bytes == torch_stats.weight_bytes == 36 + 576 + 8 + 80


def test_branching_resnet_runs_every_conv_as_an_integer_kernel(teacher_and_data, tmp_path):
    """A block's first conv and its downsample read one tensor: both must still fuse."""
    _, data = teacher_and_data
    torch.manual_seed(0)
    resnet = build_builtin("resnet").eval()
    q = calibrate(quantize_model(resnet), data.train)
    path = export_qcdq(q, data.input_shape, tmp_path / "r.onnx")
    lat = measure_latency(path, load_profile("x86_host"), runs=5, warmup=1, min_time_s=0)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in resnet.modules())
    assert sum(n for k, n in lat.integer_kernels.items() if k.endswith("QLinearConv")) == convs
    assert lat.float_compute_kernels == {}
    assert check_parity(q, path, data.val) >= 0.99


def test_parity_catches_an_unfaithful_export_but_not_near_ties(teacher_and_data, tmp_path):
    import copy

    from hwcompress.quant.export import parity

    teacher, data = teacher_and_data
    q = calibrate(quantize_model(teacher), data.train)
    path = export_qcdq(q, data.input_shape, tmp_path / "q.onnx")
    other = copy.deepcopy(q)
    with torch.no_grad():  # the file no longer computes what this model computes
        for m in other.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(m.weight.roll(3, dims=0))
    with pytest.raises(QuantizationError, match="not faithful"):
        check_parity(other, path, data.val)

    class Tied(torch.nn.Module):  # every logit equal: any pick is a tie, not a disagreement
        def forward(self, x):
            return torch.zeros(x.shape[0], 10)

    assert parity(Tied(), path, data.val) == 1.0
