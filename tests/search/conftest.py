from __future__ import annotations

import pytest


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
        out=str(tmp_path / "run"),
    )
