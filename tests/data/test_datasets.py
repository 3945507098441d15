from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwcompress.data import DataConfig, load_data
from hwcompress.errors import DataError

SHARED = Path(
    os.environ.get("HWCOMPRESS_DATA_DIR", Path(__file__).parents[3] / "shared" / "datasets")
)


def _indices(loader):
    return torch.cat([b[1] for b in loader])


def test_digits_splits_are_fixed_and_disjoint():
    a = load_data(DataConfig(seed=3))
    assert (a.num_classes, a.in_channels, a.image_shape) == (10, 1, (1, 8, 8))
    n_train, n_val, n_test = (len(x.dataset) for x in (a.train, a.val, a.test))
    assert n_train + n_val + n_test == 1797
    # The run's seed shuffles the training data but never moves the validation split: a
    # teacher trained in a run with one seed must not be validated on its training images
    # in a run with another.
    c = load_data(DataConfig(seed=4))
    assert torch.equal(a.val.dataset.tensors[0], c.val.dataset.tensors[0])
    assert torch.equal(a.train.dataset.tensors[0], c.train.dataset.tensors[0])
    assert not torch.equal(_indices(a.train), _indices(c.train))
    d = load_data(DataConfig(split_seed=4))
    assert not torch.equal(a.val.dataset.tensors[0], d.val.dataset.tensors[0])
    # The test split depends on neither; validation comes out of training data.
    assert torch.equal(a.test.dataset.tensors[0], d.test.dataset.tensors[0])
    val = {tuple(r.tolist()) for r in d.val.dataset.tensors[0].flatten(1)}
    train = {tuple(r.tolist()) for r in d.train.dataset.tensors[0].flatten(1)}
    assert not val & train - {tuple([0.0] * 64)}


def test_train_in_order_does_not_depend_on_earlier_epochs():
    a, b = load_data(DataConfig()), load_data(DataConfig())
    for _ in range(2):
        next(iter(b.train))  # the shuffling generator advances
    assert not torch.equal(next(iter(a.train))[1], next(iter(b.train))[1])
    assert torch.equal(_indices(a.train_in_order()), _indices(b.train_in_order()))


def test_train_limit():
    assert len(load_data(DataConfig(train_limit=100)).train.dataset) == 100


def test_missing_torchvision_folder_names_layout_and_flag(tmp_path):
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name="fashion_mnist", data_dir=str(tmp_path)))
    message = str(info.value)
    assert "FashionMNIST/raw" in message and "--download" in message and "--data-dir" in message


def test_unknown_dataset():
    with pytest.raises(DataError, match="imagefolder:PATH"):
        load_data(DataConfig(name="imagenet22k"))


def test_imagefolder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            arr = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
    data = load_data(DataConfig(name=f"imagefolder:{tmp_path}", image_size=16, batch_size=4))
    assert data.num_classes == 2 and data.image_shape == (3, 16, 16)
    x, y = next(iter(data.train))
    assert x.shape[1:] == (3, 16, 16) and set(y.tolist()) <= {0, 1}
    with pytest.raises(DataError, match="not a folder"):
        load_data(DataConfig(name=f"imagefolder:{tmp_path / 'nope'}"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "FashionMNIST" / "raw").is_dir(), reason="shared Fashion-MNIST not present"
)
def test_shared_fashion_mnist():
    data = load_data(DataConfig(name="fashion_mnist", data_dir=str(SHARED)))
    assert data.image_shape == (1, 28, 28)
    assert len(data.train.dataset) + len(data.val.dataset) == 60000
    assert len(data.test.dataset) == 10000
    assert set(_indices(data.test).tolist()) == set(range(10))
