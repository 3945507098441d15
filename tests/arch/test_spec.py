from __future__ import annotations

import pytest
import torchvision

from hwcompress.arch import ArchSpec, Genome, build_spec
from hwcompress.errors import GenomeError
from hwcompress.models import build_builtin


def test_builtin_vgg_decision_points():
    spec = build_spec(build_builtin("vgg"), (1, 1, 8, 8))
    # The stem is kept (it adapts the image channels); every other conv block is removable.
    assert [u.name for u in spec.units] == [
        "features.1",
        "features.3",
        "features.4",
        "features.6",
        "features.7",
    ]
    assert all(u.kind == "conv" for u in spec.units)
    assert [g.key for g in spec.shrinkable] == [
        "features.0.conv",
        "features.1.conv",
        "features.3.conv",
        "features.4.conv",
        "features.6.conv",
        "features.7.conv",
    ]
    fc = spec.layer("classifier")
    assert fc.kind == "linear" and fc.in_group == "features.7.conv" and fc.factor == 1


def test_resnet_groups_tie_residual_adds():
    spec = build_spec(torchvision.models.resnet18(num_classes=10), (1, 3, 32, 32))
    # Identity blocks are removable; blocks that downsample are kept, as in N2N.
    assert {u.name for u in spec.units} == {
        "layer1.0",
        "layer1.1",
        "layer2.1",
        "layer3.1",
        "layer4.1",
    }
    stem = next(g for g in spec.groups if g.key == "conv1")
    # The stem and every block output of layer1 share one channel group through the adds.
    assert set(stem.producers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2"}
    assert spec.layer("layer1.0.conv1").skip


def test_depthwise_convs_follow_their_input_group():
    spec = build_spec(torchvision.models.mobilenet_v2(num_classes=10), (1, 3, 32, 32))
    dw = spec.layer("features.2.conv.1.0")
    assert dw.kind == "dwconv" and dw.in_group == dw.out_group == "features.2.conv.0.0"


def test_spec_round_trips_through_json():
    spec = build_spec(build_builtin("resnet"), (1, 1, 8, 8))
    assert ArchSpec.from_dict(spec.to_dict()) == spec


def test_genome_validation_and_key():
    spec = build_spec(build_builtin("vgg"), (1, 1, 8, 8))
    with pytest.raises(GenomeError, match="not a removable unit"):
        spec.validate(Genome(keep={"features.0": False}))
    with pytest.raises(GenomeError, match="not a shrinkable"):
        spec.validate(Genome(width={"classifier": 0.5}))
    with pytest.raises(GenomeError, match=r"\(0, 1\]"):
        spec.validate(Genome(width={"features.1.conv": 0}))
    a = Genome(keep={"features.1": True, "features.3": False}, width={"features.1.conv": 1.0})
    b = Genome(keep={"features.3": False})
    assert a.key() == b.key()
    assert Genome.from_dict(a.to_dict()) == a
