"""Shared fixtures: tiny hand-checkable models and a helper to write profile files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from hwcompress.hardware.profile import BUILTIN_PROFILE_DIR


class TinyNet(nn.Module):
    """conv(1→4, 3×3, bias) → bn → relu → maxpool 2 → flatten → linear(64→10), on 1×8×8.

    Hand counts (see tests/measure/test_stats.py):
    conv 4·8·8·1·9 = 2304 MACs, bn 256, pool 64·4 = 256, linear 10·64 = 640 → 3456 MACs;
    params 40 + 8 + 650 = 698.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.bn(self.conv(x))))))


class TinyResidual(nn.Module):
    """x → conv(2→2, 3×3, no bias) → + x, on 2×4×4: 576 + 32 MACs, 36 params."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(x) + x


@pytest.fixture
def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def tiny_residual() -> nn.Module:
    torch.manual_seed(0)
    return TinyResidual().eval()


@pytest.fixture
def profile_data() -> dict:
    """The parsed x86_host profile, to be edited by tests."""
    return yaml.safe_load((BUILTIN_PROFILE_DIR / "x86_host.yaml").read_text())


@pytest.fixture
def write_profile(tmp_path: Path) -> Callable[[dict], Path]:
    def write(data: dict, name: str = "custom.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="session")
def teacher_cache(tmp_path_factory):
    """One cache of trained built-in teachers for the whole session."""
    return tmp_path_factory.mktemp("teacher-cache")


@pytest.fixture
def tiny_search(teacher_cache, monkeypatch, tmp_path):
    """Settings for a search that takes seconds."""
    monkeypatch.setenv("HWCOMPRESS_CACHE", str(teacher_cache))
    return dict(
        profile="x86_host",
        episodes=2,
        rollouts=2,
        distill_epochs=1,
        train_limit=300,
        latency_runs=5,
        seed_ratios=(4.0, 16.0),
        promote_epochs=1,
        final_epochs=0,
        out=str(tmp_path / "run"),
    )
