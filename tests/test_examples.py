"""Every script in examples/ runs with --tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, expect",
    [
        ("jetson_nano.py", "best student"),
        ("resnet18_imagefolder_pi5.py", "best student"),
        ("mcu_quantize.py", "top-1 parity"),
        ("policy_transfer.py", "from the vgg policy"),
        ("python_api.py", "latency_budget"),
    ],
)
def test_example_runs(script, expect, teacher_cache, tmp_path):
    env = {**os.environ, "HWCOMPRESS_CACHE": str(teacher_cache)}
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / script),
            "--tiny",
            *([] if script == "python_api.py" else ["--out", str(tmp_path / "run")]),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout
