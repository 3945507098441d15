"""Where training runs: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

Teacher training, distillation, QAT and the kernel stage's fine-tune run on the device; data
stays in host memory and each batch is moved as it is used, and every trained model is moved
back to the CPU afterwards (export, onnxruntime latency and the journal work there). On a GPU,
distillation runs under bfloat16 autocast (no loss scaling needed); QAT stays in float32,
because fake-quantization's rounding must see the float weights it trains.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from hwcompress.errors import ConfigError

if TYPE_CHECKING:
    from typing import TypeAlias

    import torch

    Batch: TypeAlias = tuple[torch.Tensor, ...] | list[torch.Tensor]
    """One batch as a loader yields it: ``(inputs, labels, ...)``."""

__all__ = ["DEVICE_HELP", "autocast", "check_device", "resolve_device"]

DEVICE_HELP = "auto (a GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N"
_FORM = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(spec: str) -> str:
    """``spec`` normalised, if it has the form of a device (what the machine has is
    checked by :func:`resolve_device`).

    Raises:
        ConfigError: If it is not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    text = str(spec).strip().lower()
    if not _FORM.match(text):
        raise ConfigError(f"{{device}}: '{spec}' is not a device; use {DEVICE_HELP}")
    return text


def resolve_device(spec: str = "auto") -> torch.device:
    """The device ``spec`` names, checked against what this machine has.

    Raises:
        ConfigError: If ``spec`` is malformed, or names a GPU PyTorch cannot see.
    """
    import torch

    text = check_device(spec)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"{{device}} {text}: PyTorch sees no CUDA GPU here (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}); set {{device}} to cpu, or auto"
        )
    device = torch.device(text)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"{{device}} {text}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}"
        )
    return device


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bfloat16 autocast on a GPU when ``enabled``; a no-op context elsewhere."""
    import torch

    on = enabled and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def to_device(batch: Batch, device: torch.device):
    """The batch's tensors on ``device`` (unchanged when already there)."""
    return tuple(t.to(device, non_blocking=True) for t in batch)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without any)."""
    import torch

    return next((p.device for p in model.parameters()), torch.device("cpu"))
