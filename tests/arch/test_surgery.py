"""Random genomes always build a network that runs, exports and has the predicted size."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.data.teachers import build_teacher
from hwcompress.export import export_fp32
from hwcompress.measure.onnx_graph import analyze_onnx
from hwcompress.measure.stats import analyze_module
from hwcompress.models import build_builtin

WIDTHS = [0.1, 0.25, 0.5, 0.75, 1.0]
CROPS = [[3, 3], [3, 1], [1, 3], [1, 1]]


def _teacher(name: str):
    torch.manual_seed(0)
    if name.startswith("builtin:"):
        teacher, shape = build_builtin(name.split(":")[1]).eval(), (1, 1, 8, 8)
    else:
        teacher, shape = build_teacher(f"torchvision:{name}", 10, 3, 32).eval(), (1, 3, 32, 32)
    for m in teacher.modules():  # trained-looking batch-norms: no two folded biases are equal
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.1, 0.1)
    return teacher, shape


_CACHE: dict = {}


def _setup(name: str):
    if name not in _CACHE:
        teacher, shape = _teacher(name)
        _CACHE[name] = teacher, shape, build_spec(teacher, shape)
    return _CACHE[name]


def genomes(spec):
    keep = st.fixed_dictionaries({u.name: st.booleans() for u in spec.units})
    width = st.fixed_dictionaries({g.key: st.sampled_from(WIDTHS) for g in spec.shrinkable})
    croppable = [
        la.name
        for la in spec.layers
        if la.kind in ("conv", "dwconv") and la.kernel == (3, 3) and la.padding >= 1
    ]
    kernel = st.dictionaries(st.sampled_from(croppable), st.sampled_from(CROPS), max_size=4)
    return st.builds(lambda k, w, c: Genome(keep=k, width=w, kernel=c), keep, width, kernel)


def _check(name, genome, tmp_path, export):
    teacher, shape, spec = _setup(name)
    student = build_student(teacher, genome, shape, spec=spec)
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        assert student(x).shape == (2, 10)
    # one counting rule set: the spec's prediction, the built module and its ONNX file agree
    stats = analyze_module(student, shape)
    predicted = (spec.predict_params(genome), spec.predict_macs(genome))
    assert (stats.params, stats.macs) == predicted
    assert stats.weight_bytes == spec.predict_weight_bytes(genome) == 4 * stats.params
    if export:
        onnx_stats = analyze_onnx(export_fp32(student, shape, tmp_path / "student.onnx"))
        assert (onnx_stats.params, onnx_stats.macs) == predicted
        assert onnx_stats.weight_bytes == stats.weight_bytes
        assert onnx_stats.peak_activation_bytes == stats.peak_activation_bytes


@pytest.mark.parametrize("name", ["builtin:vgg", "builtin:resnet"])
def test_builtin_random_genomes(name, tmp_path_factory):
    spec = _setup(name)[2]

    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(genomes(spec))
    def run(genome):
        _check(name, genome, tmp_path_factory.mktemp("g"), export=True)

    run()


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "vgg11_bn", "mobilenet_v2"])
def test_torchvision_random_genomes(name, tmp_path_factory):
    spec = _setup(name)[2]

    @settings(max_examples=4, deadline=None)
    @given(genomes(spec))
    def run(genome):
        _check(name, genome, None, export=False)

    run()


@pytest.mark.slow
@pytest.mark.onnx
@pytest.mark.parametrize("name", ["resnet18", "resnet34", "vgg11_bn", "mobilenet_v2"])
def test_torchvision_random_genomes_export(name, tmp_path_factory):
    spec = _setup(name)[2]

    @settings(max_examples=2, deadline=None)
    @given(genomes(spec))
    def run(genome):
        _check(name, genome, tmp_path_factory.mktemp("g"), export=True)

    run()


@pytest.mark.parametrize("name", ["builtin:vgg", "builtin:resnet", "resnet18", "mobilenet_v2"])
def test_empty_genome_reproduces_the_teacher_exactly(name):
    teacher, shape, spec = _setup(name)
    student = build_student(teacher, Genome(), shape, spec=spec)
    x = torch.randn(3, *shape[1:])
    with torch.no_grad():
        assert torch.equal(student(x), teacher(x))


def test_removal_and_shrinkage_inherit_teacher_weights():
    teacher, shape, spec = _setup("builtin:vgg")
    g = Genome(keep={"features.1": False}, width={"features.3.conv": 0.5})
    student = build_student(teacher, g, shape, spec=spec)
    names = dict(student.named_modules())
    assert "features.1" not in names
    # features.3 read 32 channels from features.1; it now reads the stem's 32 channels with
    # the teacher's weights, and keeps its 32 most important filters out of 64.
    conv = names["features.3.conv"]
    assert conv.weight.shape == (32, 32, 3, 3)
    t = dict(teacher.named_modules())["features.3.conv"].weight
    kept = torch.topk(t.abs().sum(dim=(1, 2, 3)), 32).indices.sort().values
    assert torch.equal(conv.weight, t[kept])
    assert names["features.4.conv"].weight.shape[1] == 32


def test_shrunken_student_stays_close_to_teacher():
    """Keeping the most important channels leaves the output correlated with the teacher's."""
    teacher, shape, spec = _setup("builtin:resnet")
    student = build_student(
        teacher, Genome(width={g.key: 0.75 for g in spec.shrinkable}), shape, spec=spec
    )
    x = torch.randn(64, *shape[1:])
    with torch.no_grad():
        a, b = teacher(x).flatten(), student(x).flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.5


def test_kernel_crops_are_real_and_validated(tmp_path):
    import onnx

    from hwcompress.errors import GenomeError

    teacher, shape, spec = _setup("builtin:vgg")
    genome = Genome(
        width={spec.shrinkable[0].key: 0.5},
        kernel={"features.0.conv": [3, 1], "features.3.conv": [1, 1]},
    )
    student = build_student(teacher, genome, shape, spec=spec)
    assert student.get_submodule("features.0.conv").kernel_size == (3, 1)
    assert student.get_submodule("features.0.conv").padding == (1, 0)
    assert student.get_submodule("features.3.conv").kernel_size == (1, 1)
    # the cropped kernel keeps the teacher's centre column (after channel selection)
    w_t = teacher.get_submodule("features.3.conv").weight
    w_s = student.get_submodule("features.3.conv").weight
    assert w_s.shape[-2:] == (1, 1) and w_t.shape[-2:] == (3, 3)
    path = export_fp32(student, shape, tmp_path / "s.onnx")
    shapes = [
        list(next(a.ints for a in n.attribute if a.name == "kernel_shape"))
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "Conv"
    ]
    assert [3, 1] in shapes and [1, 1] in shapes
    assert Genome.from_dict(genome.to_dict()).key() == genome.key()
    assert genome.key() != Genome(width=genome.width).key()
    for bad in ({"features.0.conv": [2, 2]}, {"features.0.conv": [5, 5]}, {"classifier": [1]}):
        with pytest.raises(GenomeError):
            spec.validate(Genome(kernel=bad))
