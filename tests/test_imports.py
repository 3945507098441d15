"""The top-level package and its light modules must not import the heavy optional stacks."""

from __future__ import annotations

import subprocess
import sys


def test_lean_imports():
    code = (
        "import sys, hwcompress, hwcompress.hardware, hwcompress.measure, hwcompress.errors\n"
        "from hwcompress.hardware import load_profile\n"
        "load_profile('x86_host')\n"
        "heavy = [m for m in ('brevitas', 'onnxruntime', 'ray', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
