"""hwcompress: hardware-aware neural-network compression.

The top-level package is deliberately light: importing it must not import torch-heavy
optional stacks (brevitas, onnxruntime, ray). Import the submodules you need, e.g.
``from hwcompress.hardware import load_profile``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
