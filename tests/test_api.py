"""compress(): a user's own model class and plain DataLoaders, end to end; the README's snippets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hwcompress
from hwcompress.errors import HwCompressError
from hwcompress.measure.stats import analyze_module

ROOT = Path(__file__).resolve().parents[1]


class UserNet(nn.Module):
    """A model class the package has never seen, with a residual block and a two-input add."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 1)
        )
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(torch.relu(h + self.block(h)))


@pytest.fixture(scope="module")
def digits_loaders():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    labels = torch.tensor(y)
    train = DataLoader(TensorDataset(images[:1000], labels[:1000]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(images[1000:1400], labels[1000:1400]), batch_size=128)
    test = DataLoader(TensorDataset(images[1400:], labels[1400:]), batch_size=128)
    return train, val, test


@pytest.fixture(scope="module")
def trained(digits_loaders):
    train, _, _ = digits_loaders
    torch.manual_seed(0)
    model = UserNet()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(8):
        for xb, yb in train:
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.eval()


QUICK = dict(
    episodes=1, rollouts=2, distill_epochs=3, promote_epochs=0, final_epochs=4, final_min_steps=0
)


def test_compress_a_user_model_with_plain_loaders(trained, digits_loaders, tmp_path):
    import onnxruntime as ort

    train, val, test = digits_loaders
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    result = hwcompress.compress(
        trained,
        train,
        val,
        test,
        profile="x86_host",
        target="params=2x",
        seed_ratios=(2.0, 4.0),
        out=tmp_path / "run",
        **QUICK,
    )
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in before.items())
    assert isinstance(result.student, nn.Module)
    shape = (1, *next(iter(train))[0].shape[1:])
    t_params = analyze_module(trained, shape).params
    s_params = analyze_module(result.student, shape).params
    assert s_params * 2 <= t_params and result.metrics["params"] == s_params
    assert result.search.best.feasible
    # the module handed back is the ONNX file's model, and it learned something
    x, y = next(iter(test))
    session = ort.InferenceSession(str(result.onnx), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    onnx_pred = np.concatenate(
        [session.run(None, {name: x[i : i + 1].numpy()})[0] for i in range(32)]
    )
    with torch.no_grad():
        torch_pred = result.student(x[:32])
    assert (onnx_pred.argmax(1) == torch_pred.argmax(1).numpy()).mean() >= 0.97
    assert result.teacher["val_accuracy"] > 0.8  # a teacher worth compressing
    assert result.metrics["val_accuracy"] > 0.8 * result.teacher["val_accuracy"]
    assert (torch_pred.argmax(1) == y[:32]).float().mean() > 0.5
    assert result.teacher["spec"] == "object:UserNet"
    assert result.weights.is_file() and (result.out / "results.json").is_file()


def test_compress_resumes_a_finished_run(trained, digits_loaders, tmp_path):
    train, val, _ = digits_loaders
    settings = dict(profile="x86_host")
    first = hwcompress.compress(
        trained, train, val, out=tmp_path / "run", seed_ratios=(4.0,), **settings, **QUICK
    )
    again = hwcompress.compress(
        trained,
        train,
        val,
        out=tmp_path / "run",
        seed_ratios=(4.0,),
        resume=True,
        **settings,
        **QUICK,
    )
    assert sorted(c.id for c in again.search.candidates) == sorted(
        c.id for c in first.search.candidates
    )


def _dict_batches():
    yield {"image": torch.zeros(2, 1, 8, 8), "label": torch.zeros(2)}


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ("not a model", {}, "must be a torch.nn.Module"),
        (None, {"teacher": "builtin:vgg"}, "the model you pass is the teacher"),
        (None, {"dataset": "digits"}, "the loaders you pass are the data"),
        (None, {"train_limit": 100}, "max_samples"),
        (None, {"episodez": 3}, "unknown setting 'episodez'"),
        (None, {"episodes": 0}, "at least 1"),
        (None, {"profile": "no_such_board"}, "no_such_board"),
        (None, {"target": "params=0x"}, "reduction factor"),
    ],
)
def test_compress_refuses_bad_arguments(trained, digits_loaders, tmp_path, args, kwargs, words):
    train, val, _ = digits_loaders
    model = trained if args is None else args
    with pytest.raises(HwCompressError, match=re.escape(words)):
        hwcompress.compress(model, train, val, out=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("loader", "words"),
    [
        ([], "empty"),
        (_dict_batches, "(images, labels)"),
        ([(torch.zeros(2, 8, 8), torch.zeros(2, dtype=torch.long))], "(N, C, H, W)"),
        ([(torch.zeros(2, 1, 8, 8), torch.zeros(2))], "integer class index"),
        ([(torch.zeros(2, 1, 8, 8), torch.tensor([0, 12]))], "labels from 0 to 12"),
        ([(torch.zeros(2, 1, 9, 9), torch.zeros(2, dtype=torch.long))], "of one size"),
    ],
)
def test_compress_refuses_bad_loaders(trained, digits_loaders, tmp_path, loader, words):
    _, val, _ = digits_loaders
    loader = loader() if callable(loader) else loader
    with pytest.raises(HwCompressError, match=re.escape(words)):
        hwcompress.compress(trained, loader, val, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "index", range(len(re.findall(r"```python\n", (ROOT / "README.md").read_text())))
)
def test_readme_python_snippets_run(index, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[index], f"README.md python block {index}", "exec"), {"__name__": "readme"})
