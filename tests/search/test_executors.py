"""Executors: local worker processes and a local Ray instance give the serial run's results;
a killed worker loses only its candidate, which is retried once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hwcompress.errors import HwCompressError
from hwcompress.search import SearchConfig, run_search
from hwcompress.search.executors import FAULT_ALWAYS_ENV, FAULT_ONCE_ENV


def _summary(result) -> list[tuple]:
    return [
        (
            c.stage,
            c.episode,
            json.dumps(c.genome, sort_keys=True),
            c.status,
            c.metrics.get("val_accuracy"),
            c.metrics.get("params"),
            c.reward,
        )
        for c in result.candidates
    ]


def _journal_genomes(out: str) -> list[str]:
    lines = (Path(out) / "journal.jsonl").read_text().splitlines()
    return [
        json.dumps(r["candidate"]["genome"], sort_keys=True)
        for r in map(json.loads, lines)
        if r["type"] == "candidate"
    ]


@pytest.fixture
def serial(tiny_search, tmp_path):
    settings = {**tiny_search, "out": str(tmp_path / "serial")}
    return settings, run_search(SearchConfig(**settings))


def _parallel(tiny_search, tmp_path, name: str, **extra):
    settings = {
        **tiny_search,
        "out": str(tmp_path / name),
        "workers": 2,
        "worker_threads": torch.get_num_threads(),  # the serial run's arithmetic, bit for bit
        **extra,
    }
    return settings, run_search(SearchConfig(**settings))


def test_process_executor_matches_the_serial_run(serial, tiny_search, tmp_path):
    s_settings, s_result = serial
    p_settings, p_result = _parallel(tiny_search, tmp_path, "process", executor="process")
    assert _summary(p_result) == _summary(s_result)
    assert _journal_genomes(p_settings["out"]) == _journal_genomes(s_settings["out"])
    assert p_result.best.genome == s_result.best.genome
    for c in p_result.candidates:  # latency was measured (in the driver) for every candidate
        assert c.status != "ok" or c.metrics["latency_ms"] > 0


def test_a_killed_worker_loses_only_its_candidate(serial, tiny_search, tmp_path, monkeypatch):
    _, s_result = serial
    monkeypatch.setenv(FAULT_ONCE_ENV, str(tmp_path / "died-once"))
    _, p_result = _parallel(tiny_search, tmp_path, "killed", executor="process")
    assert (tmp_path / "died-once").is_file()  # a worker really died mid-candidate
    assert _summary(p_result) == _summary(s_result)  # ... and its candidate was retried


def test_a_worker_that_always_dies_fails_its_candidates_not_the_search(
    tiny_search, tmp_path, monkeypatch
):
    monkeypatch.setenv(FAULT_ALWAYS_ENV, "1")
    settings = {**tiny_search, "out": str(tmp_path / "doomed"), "executor": "process"}
    result = run_search(SearchConfig(**{**settings, "episodes": 1}))
    assert result.candidates and all(c.status == "failed" for c in result.candidates)
    assert all("WorkerDied" in c.reason and "retried once" in c.reason for c in result.candidates)
    data = json.loads(result.results_path.read_text())  # the search ran to its end
    assert data["best"] is None and len(data["candidates"]) == len(result.candidates)


def test_resume_may_change_the_executor(tiny_search, tmp_path):
    settings = {**tiny_search, "out": str(tmp_path / "r"), "episodes": 1}
    run_search(SearchConfig(**settings))
    from hwcompress.search import load_search_config

    cfg = load_search_config(settings["out"], {"executor": "process", "episodes": 1})
    assert cfg.executor == "process"
    with pytest.raises(HwCompressError, match="executor must be one of"):
        SearchConfig(profile="x86_host", executor="gpu-farm")


@pytest.mark.slow
def test_ray_executor_matches_the_serial_run_and_survives_a_killed_actor(
    serial, tiny_search, tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    _, s_result = serial
    monkeypatch.setenv(FAULT_ONCE_ENV, str(tmp_path / "actor-died"))
    _, r_result = _parallel(tiny_search, tmp_path, "ray", executor="ray")
    assert (tmp_path / "actor-died").is_file()
    assert _summary(r_result) == _summary(s_result)
