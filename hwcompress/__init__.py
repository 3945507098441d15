"""hwcompress: hardware-aware neural-network compression.

The top-level package is deliberately light: importing it must not import torch-heavy
optional stacks (brevitas, onnxruntime, ray). Import the submodules you need, e.g.
``from hwcompress.hardware import load_profile``; :func:`hwcompress.compress` (a user's own
model and DataLoaders in one call) is imported on first use.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["CompressResult", "__version__", "compress"]


def __getattr__(name: str) -> Any:
    """``hwcompress.compress`` (and its result type), imported on first use."""
    if name in ("compress", "CompressResult"):
        from hwcompress import api

        return getattr(api, name)
    raise AttributeError(f"module 'hwcompress' has no attribute {name!r}")
