"""Teacher specs: ``builtin:NAME``, ``torchvision:NAME`` or ``module.path:factory``.

Built-in teachers are trained on first use for a dataset and cached (weights and accuracy)
under ``$HWCOMPRESS_CACHE`` (default ``~/.cache/hwcompress``). Checkpoints are always loaded
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwcompress.errors import TeacherError
from hwcompress.files import what_file

CACHE_ENV = "HWCOMPRESS_CACHE"


@dataclass
class Teacher:
    """A resolved teacher and what is known about it."""

    spec: str
    model: nn.Module
    accuracy: dict[str, float] = field(default_factory=dict)
    source: str = ""
    adaptations: tuple[str, ...] = ()


ADAPTATIONS = "hwcompress_adaptations"  # attribute listing what build_teacher changed


def adaptations(model: nn.Module) -> tuple[str, ...]:
    """What :func:`build_teacher` changed in ``model`` to fit the input size."""
    return tuple(getattr(model, ADAPTATIONS, ()))


def names_code(spec: str) -> bool:
    """True if a teacher spec names Python code to import (``module.path:factory``)."""
    return not spec.startswith(("builtin:", "torchvision:"))


def check_file_teacher(spec: str, where: str, trusted: str | None) -> None:
    """Refuses a ``module.path:factory`` teacher read from a file unless the user named it.

    A checkpoint or a run folder may name ``builtin:`` and ``torchvision:`` teachers; code is
    imported only when the command line (``--teacher``) or the Python call names it too.

    Raises:
        TeacherError: If ``spec`` names code and ``trusted`` is not that same spec.
    """
    if not isinstance(spec, str):
        raise TeacherError(f"{where}: its teacher is not a teacher spec string")
    if names_code(spec) and spec != trusted:
        shown = spec if len(spec) <= 80 else spec[:77] + "..."
        raise TeacherError(
            f"{where} names the teacher {shown!r}, a Python factory; hwcompress never imports "
            "code named by a file. If you trust that code, name it yourself: --teacher "
            f"{shown} (teacher= in Python)"
        )


def cache_dir() -> Path:
    """Where trained built-in teachers are cached."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hwcompress")


def _drop_auxiliary_heads(model: nn.Module) -> None:
    """Removes training-only auxiliary classifiers (GoogLeNet, Inception v3), in place.

    They are not part of the network a user deploys, they would be counted as its parameters,
    and with them ``forward`` returns a tuple in train mode.
    """
    if not getattr(model, "aux_logits", False):
        return
    model.aux_logits = False  # type: ignore[assignment]
    for attr in ("aux1", "aux2", "AuxLogits"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)


def _adapt_torchvision(model: nn.Module, in_channels: int, image_size: int) -> nn.Module:
    """Adapts a torchvision classifier to the input channels and small images."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.in_channels != in_channels:
                new = nn.Conv2d(
                    in_channels,
                    m.out_channels,
                    m.kernel_size,  # type: ignore[arg-type]  # a 2-D conv's 2-tuples
                    m.stride,  # type: ignore[arg-type]
                    m.padding,  # type: ignore[arg-type]
                    m.dilation,  # type: ignore[arg-type]
                    m.groups,
                    m.bias is not None,
                    padding_mode=m.padding_mode,
                )
                model.set_submodule(name, new)
            break
    avgpool = getattr(model, "avgpool", None)
    classifier = getattr(model, "classifier", None)
    if image_size >= 64 or not isinstance(classifier, nn.Sequential):
        return model
    linears = [i for i, m in enumerate(classifier) if isinstance(m, nn.Linear)]
    if (
        isinstance(avgpool, nn.AdaptiveAvgPool2d)
        and avgpool.output_size not in (1, (1, 1))
        and linears
        and all(isinstance(classifier[i], nn.Dropout) for i in range(linears[0]))
    ):
        # VGG/AlexNet-style heads pool to 7×7 (6×6) and flatten; on small images pool
        # globally instead.
        size = avgpool.output_size
        area = math.prod(int(v or 1) for v in (size if isinstance(size, tuple) else (size, size)))
        first = classifier[linears[0]]
        assert isinstance(first, nn.Linear)
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        classifier[linears[0]] = nn.Linear(first.in_features // area, first.out_features)
    return model


def _runs_on(model: nn.Module, x: torch.Tensor) -> bool:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
        return True
    except (RuntimeError, ValueError):
        return False
    finally:
        model.train(was_training)


def _fit_input_size(model: nn.Module, name: str, in_channels: int, image_size: int) -> list[str]:
    """Removes a torchvision model's earliest downsampling until it runs on ``image_size``.

    The way CIFAR variants of ImageNet models are made: the stem's strided conv runs at
    stride 1 and its pooling layers go, in execution order, only as far as the input needs
    (a model that already runs is left as it is, so its checkpoints keep loading). Parameter
    shapes never change.

    Returns:
        What was changed, one phrase per layer (empty if nothing was needed).

    Raises:
        TeacherError: If the model still cannot take the input with no stem downsampling.
    """
    x = torch.zeros(1, in_channels, image_size, image_size)
    done: list[str] = []
    for qual, m in list(model.named_modules()):
        if _runs_on(model, x):
            return done
        if isinstance(m, nn.Conv2d) and max(m.stride) > 1:
            done.append(f"{qual}: stride {tuple(m.stride)} → 1")
            m.stride = (1, 1)
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d) and m.stride not in (1, (1, 1)):
            done.append(f"{qual}: {type(m).__name__} removed")
            model.set_submodule(qual, nn.Identity())
    if _runs_on(model, x):
        return done
    raise TeacherError(
        f"torchvision:{name} cannot take {image_size}×{image_size} inputs, even without "
        "downsampling before its first block; resize the images (ImageFolder datasets take "
        "--image-size) or choose another teacher"
    )


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    module_path, _, attr = spec.rpartition(":")
    try:
        module = importlib.import_module(module_path)
        return getattr(module, attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as err:
        raise TeacherError(
            f"teacher '{spec}': cannot import '{attr}' from '{module_path}' "
            f"({err}); give module.path:factory with the module on PYTHONPATH"
        ) from None


def build_teacher(spec: str, num_classes: int, in_channels: int, image_size: int = 32) -> nn.Module:
    """Builds the (untrained) architecture a teacher spec names.

    Raises:
        TeacherError: If the spec is malformed or names nothing known.
    """
    from hwcompress.models import BUILTIN_MODELS

    kind, sep, name = spec.partition(":")
    if not sep or not name:
        raise TeacherError(
            f"teacher '{spec}': expected builtin:NAME, torchvision:NAME or module.path:factory"
        )
    if kind == "builtin":
        if name not in BUILTIN_MODELS:
            raise TeacherError(
                f"unknown built-in teacher '{name}'; choose one of "
                f"{', '.join(sorted(BUILTIN_MODELS))}"
            )
        return BUILTIN_MODELS[name](num_classes=num_classes, in_channels=in_channels)
    if kind == "torchvision":
        import torchvision

        try:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        except (ValueError, TypeError) as err:
            raise TeacherError(
                f"torchvision has no classifier '{name}' ({err}); see "
                "torchvision.models.list_models()"
            ) from None
        _drop_auxiliary_heads(model)
        model = _adapt_torchvision(model, in_channels, image_size)
        setattr(model, ADAPTATIONS, _fit_input_size(model, name, in_channels, image_size))
        return model
    factory = _import_factory(spec)
    try:
        model = factory(num_classes=num_classes, in_channels=in_channels)
    except TypeError:
        model = factory()
    if not isinstance(model, nn.Module):
        raise TeacherError(
            f"teacher '{spec}': the factory returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a checkpoint safely (``weights_only=True``).

    Accepts a bare state dict or a dict with ``state_dict`` / ``model`` and optional
    ``meta``.

    Raises:
        TeacherError: If the file is missing, corrupt or needs pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found is None:
            raise TeacherError(
                f"{path}: not a PyTorch checkpoint ({what_file(path)}); give a file written by "
                "torch.save"
            ) from None
        raise TeacherError(
            f"{path}: refused to load: the checkpoint contains a pickled Python object "
            f"({found.group(1)}), and loading it would execute code. Re-save only the "
            "weights with torch.save(model.state_dict(), path)"
        ) from None
    except Exception:
        raise TeacherError(
            f"{path}: not a PyTorch checkpoint ({what_file(path)}); give a file written by "
            "torch.save"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        return data
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return {"state_dict": data["model"], "meta": data.get("meta", {})}
    if isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"state_dict": data, "meta": {}}
    raise TeacherError(f"{path}: expected a state dict (torch.save(model.state_dict(), path))")


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Loads checkpoint weights into ``model``; returns the checkpoint's ``meta``.

    Raises:
        TeacherError: If the weights do not fit the architecture.
    """
    ckpt = load_checkpoint(path)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise TeacherError(
            f"{path}: the weights do not fit the architecture: "
            f"{str(err).splitlines()[0]}. Check --teacher and --dataset"
        ) from None
    return dict(ckpt.get("meta") or {})


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict[str, Any]) -> Path:
    """Saves weights plus JSON-able metadata in a ``weights_only``-loadable file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"state_dict": model.state_dict(), "meta": json.loads(json.dumps(meta))}, tmp)
    tmp.replace(path)
    return path


def _train_size(data: Any) -> list[int]:
    """The number of training samples when it is known (it is part of the cache key, so a
    teacher trained on a ``train_limit`` subset is not reused for the full set)."""
    try:
        return [len(data.train.dataset)]
    except (AttributeError, TypeError):
        return []


def resolve_teacher(
    spec: str,
    data: Any,
    *,
    weights: str | Path | None = None,
    train_config: Any = None,
    reporter: Callable[[str], None] | None = None,
) -> Teacher:
    """Resolves a teacher spec to a model with weights.

    ``builtin:NAME`` without ``weights`` is trained on ``data`` on first use and cached.
    Other specs need ``weights`` to be useful; without them they keep random weights (the
    caller is told through ``source``).

    Args:
        spec: ``builtin:NAME``, ``torchvision:NAME`` or ``module.path:factory``.
        data: A :class:`~hwcompress.data.DataBundle` (classes, channels, training data).
        weights: A checkpoint to load.
        train_config: :class:`~hwcompress.train.TrainConfig` for first-use training.
        reporter: Receives one-line progress messages.

    Returns:
        The teacher, in eval mode, with its validation/test accuracy where known.
    """
    from hwcompress.train import TrainConfig, evaluate, train_classifier

    model = build_teacher(spec, data.num_classes, data.in_channels, data.image_shape[-1])
    if weights is not None:
        meta = load_weights(model, weights)
        model.eval()
        acc = {"val": evaluate(model, data.val)}
        return Teacher(
            spec,
            model,
            {**meta.get("accuracy", {}), **acc},
            f"weights {weights}",
            adaptations(model),
        )
    if not spec.startswith("builtin:"):
        return Teacher(
            spec, model.eval(), {}, "random weights (pass --teacher-weights)", adaptations(model)
        )
    train_config = train_config or TrainConfig()
    key = hashlib.sha1(
        json.dumps(
            [
                spec,
                data.name,
                list(data.image_shape),
                data.num_classes,
                # where it trains is not part of the recipe (keys predate the device)
                {k: v for k, v in train_config.to_dict().items() if k not in ("device", "amp")},
                *_train_size(data),
                # the default split keeps the keys of teachers cached before splits had a seed
                *([["split", data.split_seed]] if getattr(data, "split_seed", 0) else []),
            ]
        ).encode()
    ).hexdigest()[:10]
    path = cache_dir() / "teachers" / f"{spec.split(':')[1]}-{data.name}-{key}.pt"
    if path.is_file():
        meta = load_weights(model, path)
        return Teacher(spec, model.eval(), meta.get("accuracy", {}), f"cache {path}")
    if reporter:
        reporter(f"training {spec} on {data.name} (first use; cached at {path})")
    train_classifier(model, data, train_config)
    acc = {"val": evaluate(model, data.val), "test": evaluate(model, data.test)}
    save_checkpoint(model, path, {"spec": spec, "dataset": data.name, "accuracy": acc})
    return Teacher(spec, model.eval(), acc, f"trained, cached at {path}")
