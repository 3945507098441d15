"""Threads pinned to cores while models are timed.

With ``threads`` intra-op threads, onnxruntime runs an inference on the calling thread and
``threads - 1`` workers. Left to the scheduler, a session's worker may share a core with the
caller, and which sessions are unlucky changes with every new session: on this 2-core VM the
same student timed six times in turn with the teacher, each time in fresh sessions, measured
0.146–0.182 of the teacher's latency. With the caller pinned to the first core the process
may use and the workers to the next ones (onnxruntime's ``session.intra_op_thread_affinities``),
the same six sittings measured 0.144–0.159. Deployments pin their inference threads for the
same reason. The caller is pinned only while it times, and released after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["caller_pinned", "pin_workers", "worker_affinities"]


def _allowed() -> list[int]:
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def worker_affinities(threads: int) -> str | None:
    """onnxruntime's affinity string for ``threads - 1`` workers (one core each, after the
    caller's; 1-based processor ids), or None where there are not enough cores to give every
    thread its own or this system cannot pin threads."""
    cores = _allowed()
    if threads < 2 or len(cores) < threads or not hasattr(os, "sched_setaffinity"):
        return None
    return ";".join(str(c + 1) for c in cores[1:threads])


def pin_workers(options: Any, threads: int) -> Any:
    """``options`` (onnxruntime ``SessionOptions``) with its workers pinned (see
    :func:`worker_affinities`); unchanged where they cannot be."""
    if (affinities := worker_affinities(threads)) is not None:
        options.add_session_config_entry("session.intra_op_thread_affinities", affinities)
    return options


@contextmanager
def caller_pinned(threads: int) -> Iterator[None]:
    """The calling thread pinned to the first allowed core while the block runs (where the
    sessions' workers are pinned to the others), then given back every core it had."""
    if worker_affinities(threads) is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
