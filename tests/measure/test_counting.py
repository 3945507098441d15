"""One counting rule set: the spec, the PyTorch module and the integer ONNX file agree."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.stats import analyze_module
from hwcompress.models import build_builtin
from hwcompress.quant.convert import calibrate, quantize_model
from hwcompress.quant.export import export_qcdq

SHAPE = (1, 1, 8, 8)


@pytest.mark.onnx
@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_quantized_students_count_the_same_everywhere(name, tmp_path_factory):
    torch.manual_seed(0)
    teacher = build_builtin(name).eval()
    spec = build_spec(teacher, SHAPE)
    weighted = [la.name for la in spec.layers if la.kind in ("conv", "dwconv", "linear")]
    images = [(torch.rand(16, *SHAPE[1:]), torch.zeros(16, dtype=torch.long))]

    @settings(
        max_examples=3,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking re-exports for minutes
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        st.fixed_dictionaries({g.key: st.sampled_from([0.25, 0.5, 1.0]) for g in spec.shrinkable}),
        st.fixed_dictionaries({n: st.sampled_from([4, 8]) for n in weighted}),
    )
    def run(width, bits):
        genome = Genome(width=width, weight_bits=bits)
        student = build_student(teacher, genome, SHAPE, spec=spec).eval()
        q = quantize_model(student, weight_bits=bits, default_act_bits=8)
        calibrate(q, images)
        path = export_qcdq(q, SHAPE, tmp_path_factory.mktemp("q") / "q.onnx")
        module = analyze_module(student, SHAPE, weight_bits=bits, activation_bits=8)
        onnx = analyze_onnx(path)
        assert onnx.params == module.params == spec.predict_params(genome)
        assert onnx.macs == module.macs == spec.predict_macs(genome)
        assert onnx.weight_bytes == module.weight_bytes == spec.predict_weight_bytes(genome)
        assert onnx.weight_bit_widths == module.weight_bit_widths
        assert onnx.activation_bit_widths == module.activation_bit_widths
        # an int8 model's activations are counted in int8 on both sides
        assert onnx.peak_activation_bytes == module.peak_activation_bytes

    run()
