"""Every torchvision classification CNN: the spec, random students, their sizes and export.

For each builder in ``torchvision.models`` (random weights, 3×32×32 inputs, adapted by
``build_teacher`` as a user's teacher would be): the spec builds and the empty genome is the
teacher, exactly; no removal unit makes the student larger; random genomes with removals,
widths and kernel crops build, run, have the predicted parameters and MACs, and export to
ONNX with the PyTorch outputs.

Left out, and why:

- ``vit_*``, ``swin_*``, ``swin_v2_*``, ``maxvit_t``: transformers (attention blocks, fixed
  224×224 position embeddings or windows), not CNNs; the surgery does not shrink them.
- The 18 builders over 40 M parameters (below, ``TOO_BIG``): each takes 10–70 s here (building
  the random weights, tracing, two students), together ~9 min, over the suite's budget on 2
  cores. Their families run below at smaller sizes; the same checks (spec, empty genome,
  removal units, three random genomes with exact parameter and MAC predictions) passed on all
  but ``regnet_y_128gf`` (645 M parameters, not tried) when the change was made.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torchvision

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.data.teachers import adaptations, build_teacher
from hwcompress.measure.stats import analyze_module

NOT_CNN = ("vit_", "swin_", "maxvit_")
TOO_BIG = {
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "regnet_x_16gf",
    "regnet_x_32gf",
    "regnet_y_16gf",
    "regnet_y_32gf",
    "regnet_y_128gf",
    "resnet101",
    "resnet152",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet101_2",
    "wide_resnet50_2",
}
ALL = [
    name
    for name in torchvision.models.list_models(module=torchvision.models)
    if not name.startswith(NOT_CNN) and name not in TOO_BIG
]
# One small member per family runs in the quick subset; the rest are marked slow.
QUICK = {
    "alexnet",
    "convnext_tiny",
    "densenet121",
    "efficientnet_b0",
    "googlenet",
    "inception_v3",
    "mnasnet0_5",
    "mobilenet_v3_small",
    "regnet_x_400mf",
    "resnet18",
    "resnext50_32x4d",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "vgg11_bn",
}
SHAPE = (1, 3, 32, 32)
WIDTHS = [0.25, 0.5, 0.75, 1.0]
CROPS = [[3, 3], [3, 1], [1, 3], [1, 1]]


def _random_genome(spec, rng: random.Random) -> Genome:
    croppable = [
        la.name
        for la in spec.layers
        if la.kind in ("conv", "dwconv") and la.kernel == (3, 3) and la.padding >= 1
    ]
    return Genome(
        keep={u.name: rng.random() < 0.5 for u in spec.units},
        width={g.key: rng.choice(WIDTHS) for g in spec.shrinkable},
        kernel={c: rng.choice(CROPS) for c in rng.sample(croppable, min(3, len(croppable)))},
    )


def _onnx_outputs(model: torch.nn.Module, x: torch.Tensor, path) -> np.ndarray:
    import onnxruntime as ort

    from hwcompress.export import export_fp32

    export_fp32(model, SHAPE, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.onnx
@pytest.mark.parametrize(
    "name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in ALL]
)
def test_torchvision_cnn(name, tmp_path):
    torch.manual_seed(0)
    teacher = build_teacher(f"torchvision:{name}", 10, 3, SHAPE[-1]).eval()
    spec = build_spec(teacher, SHAPE)
    counted = analyze_module(teacher, SHAPE)
    n_teacher, macs_teacher = counted.params, counted.macs
    x = torch.randn(1, *SHAPE[1:])

    assert (spec.predict_params(Genome()), spec.predict_macs(Genome())) == (n_teacher, macs_teacher)
    with torch.no_grad():
        assert torch.equal(build_student(teacher, Genome(), SHAPE, spec=spec)(x), teacher(x))
    for unit in spec.units:
        alone = Genome(keep={unit.name: False})
        assert spec.predict_params(alone) <= n_teacher, unit.name
        assert spec.predict_macs(alone) <= macs_teacher, unit.name

    rng = random.Random(name)
    for i in range(2):
        genome = _random_genome(spec, rng)
        student = build_student(teacher, genome, SHAPE, spec=spec).eval()
        stats = analyze_module(student, SHAPE)
        assert (stats.params, stats.macs) == (
            spec.predict_params(genome),
            spec.predict_macs(genome),
        )
        with torch.no_grad():
            ours = student(x)
        assert ours.shape == (1, 10)
        if i == 0:
            theirs = _onnx_outputs(student, x, tmp_path / "student.onnx")
            np.testing.assert_allclose(theirs, ours.numpy(), rtol=1e-3, atol=1e-4)


def test_small_inputs_adapt_the_stem_and_say_so():
    # 8×8 digits: SqueezeNet's stem would pool the image away; the stem stride and pool go.
    model = build_teacher("torchvision:squeezenet1_1", 10, 1, 8)
    assert adaptations(model) == (
        "features.0: stride (2, 2) → 1",
        "features.2: MaxPool2d removed",
    )
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    # A model that already runs on the input is left as it is (its checkpoints keep loading).
    assert adaptations(build_teacher("torchvision:resnet18", 10, 3, 32)) == ()


def test_channel_shuffle_fixes_the_shuffled_groups():
    spec = build_spec(build_teacher("torchvision:shufflenet_v2_x0_5", 10, 3, 32), SHAPE)
    conv5 = spec.layer("conv5.0")
    assert conv5.in_channels == 192
    group = next(g for g in spec.groups if g.key == conv5.in_group)
    assert group.channels == 192 and not group.shrinkable


def test_channel_reducing_convs_are_not_removal_units():
    spec = build_spec(build_teacher("torchvision:squeezenet1_1", 10, 3, 32), SHAPE)
    # Removing a Fire squeeze would feed its 2–4× wider input to both expand convs.
    assert not [u for u in spec.units if u.name.endswith("squeeze")]
