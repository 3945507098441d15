"""Datasets as train / validation / test loaders with a fixed seed.

The validation split is carved from the training data; the search's reward reads it, never
the test split. Small image sets are held in memory as tensors, which keeps the many short
trainings of a search fast.

Registered names: ``digits`` (scikit-learn, built in), ``mnist``, ``fashion_mnist``,
``cifar10``, ``cifar100``, ``svhn`` (torchvision, from ``data_dir``), and
``imagefolder:PATH`` for a user's own images.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from hwcompress.errors import DataError

#: Environment variable giving the default ``data_dir``.
DATA_DIR_ENV = "HWCOMPRESS_DATA_DIR"


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Which data to load and how to batch it.

    Attributes:
        name: A registered dataset name or ``imagefolder:PATH``.
        data_dir: Folder holding torchvision datasets (default: ``$HWCOMPRESS_DATA_DIR``).
        download: Let torchvision download a missing dataset (off by default).
        batch_size: Training batch size (evaluation uses 4× this).
        val_fraction: Share of the training data held out for validation.
        seed: Seed of the training data's shuffling.
        split_seed: Seed of the train / validation split. It is kept apart from ``seed`` and
            fixed by default, so every run and command holds out the same validation images:
            a teacher trained by one run (or by ``hwcompress train``) is never validated on its
            own training data in a run with another ``seed``.
        train_limit: Use at most this many training samples (quick runs and tests).
        image_size: Side length images from ``imagefolder`` are resized to.
    """

    name: str = "digits"
    data_dir: str | None = None
    download: bool = False
    batch_size: int = 64
    val_fraction: float = 0.1
    seed: int = 0
    split_seed: int = 0
    train_limit: int | None = None
    image_size: int = 32

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise DataError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.batch_size < 1:
            raise DataError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if self.train_limit is not None and self.train_limit < 1:
            raise DataError(f"train_limit must be ≥ 1, got {self.train_limit}")

    def resolved_data_dir(self) -> Path:
        """The folder to read torchvision datasets from."""
        return Path(self.data_dir or os.environ.get(DATA_DIR_ENV) or "./data")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass
class DataBundle:
    """Loaders and facts about one dataset."""

    name: str
    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    in_channels: int
    image_shape: tuple[int, int, int]
    extras: dict[str, Any] = field(default_factory=dict)
    split_seed: int = 0

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of a batch of one: ``(1, C, H, W)``."""
        return (1, *self.image_shape)

    def train_in_order(self) -> DataLoader:
        """The training split in a fixed order, for passes that must not depend on how often
        :attr:`train` (whose shuffling generator advances each epoch) was iterated before,
        such as calibration. The split itself is already a random draw of the data."""
        return DataLoader(self.train.dataset, batch_size=self.train.batch_size, shuffle=False)


@dataclass
class Splits:
    """What a dataset loader returns before batching."""

    train: Dataset
    test: Dataset
    num_classes: int
    image_shape: tuple[int, int, int]


DatasetLoader = Callable[[DataConfig], Splits]
DATASETS: dict[str, DatasetLoader] = {}


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator adding a dataset loader under ``name``."""

    def wrap(fn: DatasetLoader) -> DatasetLoader:
        DATASETS[name] = fn
        return fn

    return wrap


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Scales an (N, C, H, W) float tensor to zero mean, unit variance per channel."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


@register_dataset("digits")
def _digits(config: DataConfig) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    x = _normalise(x)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    n_test = len(x) // 5  # a fixed 20% test split, independent of the run's seed
    test, train = perm[:n_test], perm[n_test:]
    return Splits(TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test]), 10, (1, 8, 8))


def _torchvision_set(
    cls_name: str,
    folder: str,
    files: str,
    num_classes: int,
    split_kw: Callable[[bool], dict[str, Any]],
) -> DatasetLoader:
    def load(config: DataConfig) -> Splits:
        import torchvision

        root = config.resolved_data_dir()
        cls = getattr(torchvision.datasets, cls_name)
        try:
            raw_train = cls(str(root), download=config.download, **split_kw(True))
            raw_test = cls(str(root), download=config.download, **split_kw(False))
        except (RuntimeError, FileNotFoundError, OSError) as err:
            raise DataError(
                f"{config.name}: not found under '{root}' ({str(err).splitlines()[0]}). "
                f"Expected {root}/{folder}/{files}. Pass --data-dir (or set ${DATA_DIR_ENV}) "
                "to the folder that holds it, or add --download to fetch it"
            ) from None
        xs, ys = [], []
        for raw in (raw_train, raw_test):
            data = raw.data
            x = torch.as_tensor(data) if not isinstance(data, torch.Tensor) else data
            if x.ndim == 3:
                x = x.unsqueeze(1)
            elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
                x = x.permute(0, 3, 1, 2)
            labels = getattr(raw, "targets", None)
            if labels is None:
                labels = raw.labels
            xs.append(x.float() / 255.0)
            ys.append(torch.as_tensor(labels, dtype=torch.long))
        mean = xs[0].mean(dim=(0, 2, 3), keepdim=True)
        std = xs[0].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        train = TensorDataset((xs[0] - mean) / std, ys[0])
        test = TensorDataset((xs[1] - mean) / std, ys[1])
        return Splits(train, test, num_classes, tuple(xs[0].shape[1:]))  # type: ignore[arg-type]

    return load


_IDX = "raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"
register_dataset("mnist")(_torchvision_set("MNIST", "MNIST", _IDX, 10, lambda t: {"train": t}))
register_dataset("fashion_mnist")(
    _torchvision_set("FashionMNIST", "FashionMNIST", _IDX, 10, lambda t: {"train": t})
)
register_dataset("cifar10")(
    _torchvision_set(
        "CIFAR10", "cifar-10-batches-py", "data_batch_1..5, test_batch", 10, lambda t: {"train": t}
    )
)
register_dataset("cifar100")(
    _torchvision_set("CIFAR100", "cifar-100-python", "train, test", 100, lambda t: {"train": t})
)
register_dataset("svhn")(
    _torchvision_set(
        "SVHN",
        "",
        "train_32x32.mat, test_32x32.mat",
        10,
        lambda t: {"split": "train" if t else "test"},
    )
)


def _imagefolder(config: DataConfig, path: str) -> Splits:
    import torchvision
    from torchvision import transforms

    root = Path(path)
    if not root.is_dir():
        raise DataError(
            f"imagefolder: '{root}' is not a folder. Give a folder with one "
            "sub-folder of images per class (optionally inside train/ and test/)"
        )
    tf = transforms.Compose(
        [transforms.Resize((config.image_size, config.image_size)), transforms.ToTensor()]
    )
    try:
        if (root / "train").is_dir() and (root / "test").is_dir():
            train = torchvision.datasets.ImageFolder(str(root / "train"), transform=tf)
            test = torchvision.datasets.ImageFolder(str(root / "test"), transform=tf)
        else:
            full = torchvision.datasets.ImageFolder(str(root), transform=tf)
            perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(1234))
            n_test = max(1, len(full) // 5)
            train = Subset(full, perm[n_test:].tolist())
            test = Subset(full, perm[:n_test].tolist())
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(
            f"imagefolder: cannot read '{root}' ({err}). Expected "
            f"{root}/CLASS_NAME/IMAGE.png for each class"
        ) from None
    classes = (train.dataset if isinstance(train, Subset) else train).classes  # type: ignore
    if len(classes) < 2:
        raise DataError(
            f"imagefolder: '{root}' has {len(classes)} class ({', '.join(classes)}); a "
            "classifier needs at least two sub-folders of images, one per class"
        )
    if isinstance(test, torchvision.datasets.ImageFolder) and test.classes != classes:
        raise DataError(
            f"imagefolder: '{root}/train' and '{root}/test' hold different classes "
            f"({len(classes)} vs {len(test.classes)}); give both the same class sub-folders"
        )
    train_set, test_set = _materialise(train, "imagefolder"), _materialise(test, "imagefolder")
    shape = tuple(train_set.tensors[0].shape[1:])
    return Splits(train_set, test_set, len(classes), shape)  # type: ignore[arg-type]


def _materialise(ds: Dataset, what: str = "dataset") -> TensorDataset:
    """Reads every sample of ``ds`` into memory, naming the image file (for an ``ImageFolder``
    or a subset of one) that cannot be read."""
    base, index = (ds.dataset, ds.indices) if isinstance(ds, Subset) else (ds, None)
    xs, ys = [], []
    for i in range(len(ds)):  # type: ignore[arg-type]
        try:
            x, y = ds[i]
        except (OSError, ValueError, SyntaxError) as err:  # PIL: UnidentifiedImageError is OSError
            j = index[i] if index is not None else i
            path = base.samples[j][0] if hasattr(base, "samples") else f"image {j}"
            raise DataError(
                f"{what}: cannot read {path} ({str(err).splitlines()[0][:200]}); "
                "remove or replace that file"
            ) from None
        xs.append(x)
        ys.append(y)
    return TensorDataset(torch.stack(xs), torch.tensor(ys, dtype=torch.long))


def load_data(config: DataConfig | None = None) -> DataBundle:
    """Loads a dataset as seeded train / validation / test loaders.

    Args:
        config: What to load; the default is the built-in ``digits``.

    Returns:
        The loaders, the number of classes and the image shape.

    Raises:
        DataError: If the name is unknown or the files are missing.
    """
    config = config or DataConfig()
    if config.name.startswith("imagefolder:"):
        splits = _imagefolder(config, config.name.split(":", 1)[1])
    elif config.name in DATASETS:
        splits = DATASETS[config.name](config)
    else:
        raise DataError(
            f"unknown dataset '{config.name}'; choose one of "
            f"{', '.join(sorted(DATASETS))} or imagefolder:PATH"
        )
    gen = torch.Generator().manual_seed(config.split_seed)
    n = len(splits.train)  # type: ignore[arg-type]
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, int(n * config.val_fraction))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if config.train_limit is not None:
        train_idx = train_idx[: config.train_limit]
    train = _subset(splits.train, train_idx)
    val = _subset(splits.train, val_idx)
    eval_bs = config.batch_size * 4
    return DataBundle(
        name=config.name,
        train=DataLoader(
            train,
            batch_size=config.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(config.seed),
        ),
        val=DataLoader(val, batch_size=eval_bs),
        test=DataLoader(splits.test, batch_size=eval_bs),
        num_classes=splits.num_classes,
        in_channels=splits.image_shape[0],
        image_shape=splits.image_shape,
        split_seed=config.split_seed,
    )


def _subset(ds: Dataset, idx: torch.Tensor) -> Dataset:
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[idx] for t in ds.tensors))
    return Subset(ds, idx.tolist())
