"""A user's own DataLoaders as a :class:`~hwcompress.data.DataBundle`.

The search distils many students from one set of teacher logits, so the training data is read
once into memory (as :func:`~hwcompress.data.load_data` does for the built-in datasets). Any
iterable of ``(images, labels)`` batches works: a ``DataLoader`` over an ``ImageFolder``, a
``TensorDataset``, a list of tensors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from hwcompress.data.datasets import DataBundle
from hwcompress.errors import DataError

__all__ = ["bundle_from_loaders"]

#: The most image bytes read into memory from one loader (unless ``max_samples`` says otherwise).
MAX_BYTES = 2 * 1024**3


def _read(loader: Iterable[Any], what: str, limit: int | None) -> TensorDataset:
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    n = 0
    for i, batch in enumerate(loader):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(
                f"{what}: batch {i} is a {type(batch).__name__}; each batch must be "
                "(images, labels), as a DataLoader over a classification dataset yields"
            )
        x, y = batch[0], batch[1]
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise DataError(
                f"{what}: batch {i}'s images must be a float tensor (N, C, H, W); got "
                f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}"
            )
        y = torch.as_tensor(y)
        if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
            raise DataError(
                f"{what}: batch {i}'s labels must be one integer class index per image; got "
                f"{y.dtype} of shape {tuple(y.shape)} for {x.shape[0]} images"
            )
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise DataError(
                f"{what}: batch {i} has images of shape {tuple(x.shape[1:])}, batch 0 "
                f"{tuple(xs[0].shape[1:])}; resize every image to one size"
            )
        xs.append(x.detach().cpu().float())
        ys.append(y.detach().cpu().long())
        if limit is None:
            limit = max(1, MAX_BYTES // (4 * x[0].numel()))
        n += x.shape[0]
        if n >= limit:
            break
    if not xs:
        raise DataError(f"{what} is empty; give a loader with at least one batch")
    return TensorDataset(torch.cat(xs)[:limit], torch.cat(ys)[:limit])


def bundle_from_loaders(
    train: Iterable[Any],
    val: Iterable[Any],
    test: Iterable[Any] | None = None,
    *,
    num_classes: int,
    batch_size: int | None = None,
    max_samples: int | None = None,
) -> DataBundle:
    """Reads a user's loaders into the bundle the search works on.

    Args:
        train: Training batches (the students are distilled on them).
        val: Validation batches (they rank the students; keep them apart from ``train``).
        test: Test batches, only reported; the validation batches when not given.
        num_classes: The number of classes (the model's output width).
        batch_size: Training batch size (default: the train loader's, else 64).
        max_samples: Read at most this many samples from each loader (default: as many as
            fit in 2 GiB).

    Returns:
        The bundle, named ``loaders``.

    Raises:
        DataError: If a loader is empty or yields something other than (images, labels).
    """
    train_set = _read(train, "train_loader", max_samples)
    val_set = _read(val, "val_loader", max_samples)
    test_set = _read(test, "test_loader", max_samples) if test is not None else val_set
    shape = tuple(train_set.tensors[0].shape[1:])
    for what, ds in (("val_loader", val_set), ("test_loader", test_set)):
        if tuple(ds.tensors[0].shape[1:]) != shape:
            raise DataError(
                f"{what} has images of shape {tuple(ds.tensors[0].shape[1:])}, train_loader "
                f"{shape}; give every loader images of one size"
            )
    for what, ds in (
        ("train_loader", train_set),
        ("val_loader", val_set),
        ("test_loader", test_set),
    ):
        labels = ds.tensors[1]
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DataError(
                f"{what} has labels from {int(labels.min())} to {int(labels.max())}, but the "
                f"model has {num_classes} outputs; labels must be class indices 0…"
                f"{num_classes - 1}"
            )
    bs = batch_size or getattr(train, "batch_size", None) or 64
    eval_bs = bs * 4
    return DataBundle(
        name="loaders",
        train=DataLoader(
            train_set, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0)
        ),
        val=DataLoader(val_set, batch_size=eval_bs),
        test=DataLoader(test_set, batch_size=eval_bs),
        num_classes=num_classes,
        in_channels=shape[0],
        image_shape=shape,  # type: ignore[arg-type]
    )
