"""Executors: where the candidates of one episode are trained — one by one, in local worker
processes, or on a Ray cluster.

An episode's rollouts are sampled first (sampling never depends on their rewards), so they can
be evaluated together. The expensive, independent part of each evaluation — build, distil
(or quantize and fine-tune), export — runs on the workers
(:meth:`~hwcompress.search.evaluate.CandidateEvaluator.prepare`). Latency is then measured in
the driver, one model at a time, after every worker of the batch has finished
(:meth:`~hwcompress.search.evaluate.CandidateEvaluator.finish`), so parallel training never
distorts a timing (with the ``remote`` source the board measures anyway). Candidates are
journaled in rollout order, so the journal, resume, seeds and results mean the same whatever
the executor.

A worker that dies (killed, out of memory) loses only the candidate it was training: that
candidate is retried once on a fresh worker, and recorded as failed with the reason if its
worker dies again.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol

from hwcompress.errors import HwCompressError
from hwcompress.search.candidate import Status

if TYPE_CHECKING:
    from hwcompress.search.candidate import Candidate
    from hwcompress.search.evaluate import SearchContext

__all__ = [
    "EXECUTORS",
    "Executor",
    "Job",
    "ProcessExecutor",
    "RayExecutor",
    "make_executor",
]

#: Test hook: a file path; the first worker job that finds it missing creates it and dies.
FAULT_ONCE_ENV = "HWCOMPRESS_FAULT_WORKER_DIES_ONCE"
#: Test hook: when set, every worker dies at the start of every job.
FAULT_ALWAYS_ENV = "HWCOMPRESS_FAULT_WORKER_ALWAYS_DIES"
#: Tries per candidate when its worker dies: the first and one retry.
MAX_TRIES = 2


@dataclass
class Job:
    """One candidate to prepare on a worker, with the context that changes between stages."""

    genome: dict[str, Any]
    stage: str
    episode: int
    method: str
    base_state: dict[str, Any] | None = None
    act_bits: int = 8
    tries: int = field(default=0, compare=False)


class Executor(Protocol):
    """Prepares candidates (see the module docstring)."""

    name: str
    workers: int

    def start(self, ctx: SearchContext) -> None: ...

    def prepare(self, jobs: list[Job]) -> list[Candidate]: ...

    def close(self) -> None: ...


def _maybe_die() -> None:
    """The fault-injection hooks the tests use to kill a worker mid-candidate."""
    if os.environ.get(FAULT_ALWAYS_ENV):
        os._exit(137)
    marker = os.environ.get(FAULT_ONCE_ENV)
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(137)


class _Worker:
    """The evaluation state of one worker: its own copy of the run's context."""

    def __init__(self, ctx_blob: bytes, threads: int) -> None:
        import torch

        from hwcompress.search.evaluate import CandidateEvaluator

        torch.set_num_threads(threads)
        self.evaluator = CandidateEvaluator(pickle.loads(ctx_blob))

    def run(self, job: Job) -> Candidate:
        from hwcompress.arch import Genome

        _maybe_die()
        ctx = self.evaluator.ctx
        ctx.base_state, ctx.act_bits = job.base_state, job.act_bits
        return self.evaluator.prepare(
            Genome.from_dict(job.genome), stage=job.stage, episode=job.episode, method=job.method
        )


def _died(job: Job, why: str) -> Candidate:
    from hwcompress.arch import Genome
    from hwcompress.search.candidate import Candidate, genome_id

    key = Genome.from_dict(job.genome).key()
    return Candidate(
        id=genome_id(key),
        stage=job.stage,
        episode=job.episode,
        method=job.method,
        genome=job.genome,
        status=Status.FAILED,
        reason=f"WorkerDied: {why}, twice; the candidate was retried once",
        reward=-1.0,
    )


def _process_main(conn: Connection, ctx_blob: bytes, threads: int) -> None:
    worker = _Worker(ctx_blob, threads)
    conn.send(("ready", None))
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(("done", worker.run(job)))


@dataclass
class _Proc:
    process: Any
    conn: Connection
    job: int | None = None
    ready: bool = False


class ProcessExecutor:
    """Local worker processes (``--executor process --workers N``).

    Each worker is a fresh Python process (spawned, not forked: forking a process that has
    run torch's thread pools can hang) with its own copy of the run's context.

    Args:
        workers: Worker processes.
        threads: Torch threads per worker (default: the cores shared out).
    """

    name = "process"

    def __init__(self, workers: int = 2, threads: int | None = None) -> None:
        if workers < 1:
            raise HwCompressError("--workers must be at least 1")
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._procs: list[_Proc] = []
        self._blob = b""

    def start(self, ctx: SearchContext) -> None:
        self._blob = pickle.dumps(ctx)
        self._mp = mp.get_context("spawn")
        self._procs = [self._spawn() for _ in range(self.workers)]

    def _spawn(self) -> _Proc:
        parent, child = self._mp.Pipe()
        proc = self._mp.Process(
            target=_process_main, args=(child, self._blob, self.threads), daemon=True
        )
        proc.start()
        child.close()
        return _Proc(proc, parent)

    def prepare(self, jobs: list[Job]) -> list[Candidate]:
        results: list[Candidate | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        while pending or any(p.job is not None for p in self._procs):
            for proc in self._procs:
                if proc.job is None and pending:
                    self._await_ready(proc)
                    i = pending.popleft()
                    jobs[i].tries += 1
                    proc.job = i
                    proc.conn.send(jobs[i])
            busy = [p for p in self._procs if p.job is not None]
            if not busy:
                continue
            wait([p.conn for p in busy] + [p.process.sentinel for p in busy])
            for k, proc in enumerate(self._procs):
                if proc.job is None:
                    continue
                i = proc.job
                try:
                    if not proc.conn.poll():
                        if proc.process.is_alive():
                            continue
                        raise EOFError
                    _, cand = proc.conn.recv()
                    results[i] = cand
                    proc.job = None
                except (EOFError, OSError, pickle.UnpicklingError):
                    proc.process.join(5)
                    why = f"its worker process died (exit code {proc.process.exitcode})"
                    self._procs[k] = self._spawn()
                    if jobs[i].tries < MAX_TRIES:
                        pending.appendleft(i)
                    else:
                        results[i] = _died(jobs[i], why)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    @staticmethod
    def _await_ready(proc: _Proc) -> None:
        """Waits, once, for a new worker to load its context (or to die trying)."""
        if proc.ready:
            return
        try:
            msg, _ = proc.conn.recv()
        except (EOFError, OSError) as err:
            raise HwCompressError(
                f"a worker process could not start ({type(err).__name__}); run with "
                "--executor serial to see the error"
            ) from None
        proc.ready = msg == "ready"

    def close(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(OSError):
                proc.conn.send(None)
        for proc in self._procs:
            proc.process.join(10)
            if proc.process.is_alive():
                proc.process.kill()
        self._procs = []


class RayExecutor:
    """Ray actors (``--executor ray [--ray-address ADDR]``; ``pip install hwcompress[ray]``).

    Without an address a local Ray instance is started (and stopped at the end); with one,
    the run joins that cluster. The run folder must be reachable at the same path from every
    worker node (a shared filesystem), as candidates write their files there.

    Args:
        workers: Actors.
        address: A Ray cluster address (``ray://host:10001`` or ``auto``).
        threads: Torch threads per actor (default: the cores shared out).
    """

    name = "ray"

    def __init__(
        self, workers: int = 2, address: str | None = None, threads: int | None = None
    ) -> None:
        if workers < 1:
            raise HwCompressError("--workers must be at least 1")
        self.workers = workers
        self.address = address
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._actors: list[Any] = []
        self._started_ray = False

    def start(self, ctx: SearchContext) -> None:
        try:
            import ray
        except ImportError:
            raise HwCompressError(
                "--executor ray needs Ray: pip install 'hwcompress[ray]'"
            ) from None
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    num_cpus=None if self.address else max(self.workers, os.cpu_count() or 1),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as err:
                raise HwCompressError(
                    f"cannot start or join Ray ({str(err).splitlines()[0]}); check --ray-address"
                ) from None
            self._started_ray = True
        self._ray = ray
        self._blob_ref = ray.put(pickle.dumps(ctx))
        self._cls = ray.remote(num_cpus=0)(_Worker).options(max_restarts=0)
        self._actors = [self._spawn() for _ in range(self.workers)]

    def _spawn(self) -> Any:
        return self._cls.remote(self._blob_ref, self.threads)

    def prepare(self, jobs: list[Job]) -> list[Candidate]:
        ray = self._ray
        results: list[Candidate | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        running: dict[Any, tuple[int, int]] = {}  # future -> (job, actor slot)
        free = deque(range(len(self._actors)))
        while pending or running:
            while pending and free:
                k, i = free.popleft(), pending.popleft()
                jobs[i].tries += 1
                running[self._actors[k].run.remote(jobs[i])] = (i, k)
            done, _ = ray.wait(list(running), num_returns=1)
            for fut in done:
                i, k = running.pop(fut)
                try:
                    results[i] = ray.get(fut)
                except ray.exceptions.RayActorError as err:
                    self._actors[k] = self._spawn()
                    why = f"its Ray actor died ({type(err).__name__})"
                    if jobs[i].tries < MAX_TRIES:
                        pending.appendleft(i)
                    else:
                        results[i] = _died(jobs[i], why)
                free.append(k)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):  # already gone
                self._ray.kill(actor)
        self._actors = []
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False


#: Parallel executor factories by name: (workers, ray address, threads) -> executor. The
#: default, ``serial``, is no executor: the runner evaluates candidates itself.
EXECUTORS: dict[str, Callable[[int, str | None, int | None], Executor]] = {
    "process": lambda workers, address, threads: ProcessExecutor(workers, threads),
    "ray": lambda workers, address, threads: RayExecutor(workers, address, threads),
}


def make_executor(
    name: str, workers: int = 2, address: str | None = None, threads: int | None = None
) -> Executor:
    """The executor called ``name``.

    Raises:
        HwCompressError: If the name is unknown.
    """
    if name not in EXECUTORS:
        raise HwCompressError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name](workers, address, threads)
