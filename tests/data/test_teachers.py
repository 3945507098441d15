from __future__ import annotations

import pytest
import torch
from torch import nn

from hwcompress.data import DataConfig, load_data
from hwcompress.data.teachers import (
    build_teacher,
    load_checkpoint,
    resolve_teacher,
    save_checkpoint,
)
from hwcompress.errors import TeacherError
from hwcompress.train import TrainConfig


def small_factory(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )


@pytest.mark.parametrize(
    "spec",
    [
        "builtin:vgg",
        "builtin:resnet",
        "torchvision:resnet18",
        "torchvision:mobilenet_v2",
        "torchvision:vgg11_bn",
        "tests.data.test_teachers:small_factory",
    ],
)
def test_specs_build_with_adapted_channels_and_classes(spec):
    model = build_teacher(spec, num_classes=7, in_channels=1, image_size=32).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7)


def test_googlenet_loses_its_auxiliary_heads():
    model = build_teacher("torchvision:googlenet", num_classes=10, in_channels=3, image_size=32)
    assert model.aux1 is None and model.aux2 is None
    assert not any(name.startswith("aux") for name, _ in model.named_parameters())
    model.train()  # train mode no longer returns a tuple with the auxiliary logits
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    "spec,words",
    [
        ("vgg", "expected builtin:NAME"),
        ("builtin:alexnet9000", "unknown built-in teacher"),
        ("torchvision:not_a_model", "torchvision has no classifier"),
        ("no.such.module:factory", "cannot import"),
    ],
)
def test_bad_specs(spec, words):
    with pytest.raises(TeacherError, match=words):
        build_teacher(spec, 10, 1)


def test_checkpoint_round_trip(tmp_path):
    model = build_teacher("builtin:vgg", 10, 1)
    path = save_checkpoint(model, tmp_path / "t.pt", {"accuracy": {"val": 0.5}})
    ckpt = load_checkpoint(path)
    assert ckpt["meta"]["accuracy"]["val"] == 0.5
    assert ckpt["state_dict"].keys() == model.state_dict().keys()


class Evil:
    def __reduce__(self):
        return (print, ("this would run",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(TeacherError, match="execute code"):
        load_checkpoint(path)


def test_corrupt_and_mismatched_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(TeacherError, match="not a PyTorch checkpoint"):
        load_checkpoint(bad)
    good = save_checkpoint(build_teacher("builtin:resnet", 10, 1), tmp_path / "r.pt", {})
    data = load_data(DataConfig(train_limit=64))
    with pytest.raises(TeacherError, match="do not fit"):
        resolve_teacher("builtin:vgg", data, weights=good)


def test_builtin_teacher_trained_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HWCOMPRESS_CACHE", str(tmp_path))
    data = load_data(DataConfig(train_limit=600))
    messages: list[str] = []
    config = TrainConfig(epochs=6)
    first = resolve_teacher("builtin:vgg", data, train_config=config, reporter=messages.append)
    assert messages and "first use" in messages[0]
    assert first.accuracy["val"] > 0.5  # far above chance (0.1)
    again = resolve_teacher("builtin:vgg", data, train_config=config)
    assert again.source.startswith("cache")
    assert again.accuracy == first.accuracy
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(first.model(x), again.model(x))
