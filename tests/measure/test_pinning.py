"""Inference threads pinned while models are timed (real onnxruntime sessions)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hwcompress.measure.pinning import caller_pinned, pin_workers, worker_affinities

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs Linux and two cores",
)


def _threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def test_workers_get_their_own_cores_and_the_caller_gets_its_back(tmp_path):
    import onnxruntime as ort
    import torch

    from hwcompress.export import export_fp32

    cores = sorted(os.sched_getaffinity(0))
    assert worker_affinities(1) is None  # no workers to pin
    assert worker_affinities(len(cores) + 1) is None  # not a core each
    assert worker_affinities(2) == str(cores[1] + 1)  # onnxruntime counts from 1

    path = export_fp32(torch.nn.Conv2d(1, 4, 3).eval(), (1, 1, 8, 8), Path(tmp_path) / "c.onnx")
    before = _threads()
    options = pin_workers(ort.SessionOptions(), 2)
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    allowed = []
    for tid in _threads() - before:  # the session's worker (and any other new thread)
        status = Path(f"/proc/self/task/{tid}/status").read_text()
        (line,) = [x for x in status.splitlines() if x.startswith("Cpus_allowed_list")]
        allowed.append(line.split()[-1])
    assert str(cores[1]) in allowed, allowed  # unpinned, a worker may run on every core
    assert session is not None

    mine = os.sched_getaffinity(0)
    with caller_pinned(2):
        assert os.sched_getaffinity(0) == {min(mine)}
    assert os.sched_getaffinity(0) == mine
    with pytest.raises(RuntimeError), caller_pinned(2):
        raise RuntimeError("a failed timing gives the cores back too")
    assert os.sched_getaffinity(0) == mine
