"""Real latency: run an ONNX model in onnxruntime with the device profile's settings.

The session uses the profile's execution provider (the first one this onnxruntime build
offers, stated in the result), its thread count and full graph optimisation. The optimised
graph is saved and read back (:mod:`hwcompress.measure.ort_graph`), so the result says which
kernels actually ran: a quantized model that silently runs float kernels is visible. Several
models are timed in turn, round after round, so that a shared machine's drift hits them alike.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

from hwcompress.errors import LatencyError, ModelError
from hwcompress.fmt import human_bytes
from hwcompress.hardware.profile import DeviceProfile
from hwcompress.hardware.sections import SourceName
from hwcompress.measure.ort_graph import choose_provider, kernel_counts, session_with_graph
from hwcompress.measure.result import LatencyResult, summarize

#: The largest input tensor a measurement allocates (a file may declare any size).
MAX_INPUT_BYTES = 1 << 30
#: The most model bytes :func:`measure_local_many` keeps open at once.
MAX_OPEN_BYTES = 2 << 30
#: Timing in turn goes on for at least this long (seconds) unless told otherwise.
MIN_TIME_IN_TURN_S = 1.5
#: Timing in turn stops after this many times the rounds asked for, however short.
MAX_ROUNDS_FACTOR = 50


def interleaved_latency(
    paths: dict[str, Path],
    input_shape: tuple[int, ...],
    *,
    rounds: int = 30,
    runs: int = 20,
    threads: int = 1,
    min_time_s: float = 2 * MIN_TIME_IN_TURN_S,
) -> dict[str, float]:
    """Median latency (ms) of several models timed in turn (A, B, C, A, B, C, …).

    For side-by-side comparisons on a shared machine: drift between minutes hits every model
    alike, so ratios of the results hold where absolute times do not. Each round times
    ``runs`` inferences per model after ``runs`` warm-up inferences; CPU, all optimisations.

    Args:
        paths: ONNX files by label.
        input_shape: The input of one inference (a fixed-seed normal sample).
        rounds: How many times every model is timed.
        runs: Inferences per model and round.
        threads: onnxruntime intra-op threads.
        min_time_s: Rounds go on until this long has passed (see :func:`_time_in_turn`).

    Returns:
        The median over rounds of each model's mean time per inference, by label.
    """
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    no_spinning(opts)
    sessions = {
        k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        for k, p in paths.items()
    }
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(runs):
            s.run(None, feeds[k])
    times = _time_in_turn([(s, feeds[k]) for k, s in sessions.items()], rounds, runs, 0, min_time_s)
    return {
        k: statistics.median(statistics.fmean(r) for r in per_round)
        for k, per_round in zip(sessions, times, strict=True)
    }


def no_spinning(options: Any) -> Any:
    """Turns off the busy-wait of ``options``' intra-op threads between inferences.

    onnxruntime's worker threads spin for a while after each inference. A session timed in
    turn with others then runs beside the spinning threads of the one timed before it: on
    2 cores, a 2-thread teacher timed in turn with small students measured 1.9 ms instead of
    its 0.8 ms alone, while the students (little parallel work) barely moved, so their
    latency ratios came out 2× too low one minute and 1.5× too high the next. Without the
    spin every session is timed alone, whatever ran before it, at a cost of a few per cent on
    a large model's time. Every measuring session here uses it, so absolute times and ratios
    agree.
    """
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _time_in_turn(
    models: list[tuple[Any, dict[str, Any]]],
    rounds: int,
    runs: int,
    warmup: int,
    min_time_s: float = 0.0,
) -> list[list[list[float]]]:
    """Times sessions in turn (A, B, C, A, B, C, …): ``rounds`` times, each session runs
    ``warmup`` untimed inferences and then ``runs`` timed ones.

    Args:
        models: Each session with its feed.
        rounds: The fewest rounds.
        runs: Timed inferences per session and round.
        warmup: Untimed inferences per session and round.
        min_time_s: Rounds go on until this long has passed (at most
            :data:`MAX_ROUNDS_FACTOR` × ``rounds``): this shared VM switches between states
            that last a second or more, in which a small student's ratio to a large teacher
            differs by up to 20 % (the teacher 0.40 ms and a student 0.077 ms in one, 0.43
            and 0.063 ms in the next), so a sitting of a tenth of a second reads one state.

    Returns:
        Per session, per round, the milliseconds of each timed inference.
    """
    times: list[list[list[float]]] = [[] for _ in models]
    start = time.perf_counter()
    done = 0
    while done < rounds or (
        time.perf_counter() - start < min_time_s and done < MAX_ROUNDS_FACTOR * rounds
    ):
        done += 1
        for (session, feed), out in zip(models, times, strict=True):
            for _ in range(warmup):
                session.run(None, feed)
            this_round = []
            for _ in range(runs):
                t0 = time.perf_counter()
                session.run(None, feed)
                this_round.append((time.perf_counter() - t0) * 1e3)
            out.append(this_round)
    return times


def random_feed(session: Any, seed: int = 0) -> dict[str, Any]:
    """A fixed-seed random input for every session input (dynamic dims taken as 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dtypes = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
        "tensor(double)": np.float64,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(int8)": np.int8,
        "tensor(uint8)": np.uint8,
    }
    feed = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        dtype = dtypes.get(inp.type)
        if dtype is None:
            raise ModelError(f"model input '{inp.name}' has unsupported type {inp.type}")
        size = math.prod(shape) * np.dtype(dtype).itemsize
        if size > MAX_INPUT_BYTES:
            raise ModelError(
                f"model input '{inp.name}' is declared {'×'.join(map(str, shape))} "
                f"({human_bytes(size)}), more than one inference may take here "
                f"({human_bytes(MAX_INPUT_BYTES)}); export the model with the input size it "
                "runs on"
            )
        feed[inp.name] = rng.standard_normal(shape).astype(dtype)
    return feed


def measure_local(
    onnx_path: str | Path,
    profile: DeviceProfile,
    *,
    runs: int | None = None,
    warmup: int | None = None,
    min_time_s: float | None = None,
    max_runs: int = 5000,
) -> LatencyResult:
    """Measures latency with onnxruntime on this machine, as the profile says.

    Args:
        onnx_path: The model.
        profile: Supplies providers, threads and the default run counts.
        runs: Minimum timed runs (default: the profile's).
        warmup: Untimed runs first (default: the profile's).
        min_time_s: Minimum total timed duration (default: the profile's).
        max_runs: Upper bound on timed runs.

    Returns:
        Latency statistics, the provider and threads used, and the kernels that ran.

    Raises:
        ModelError: If onnxruntime cannot load the model.
        LatencyError: If inference fails.
    """
    spec = profile.latency
    return measure_onnx(
        onnx_path,
        providers=profile.runtime.providers,
        threads=profile.runtime.threads,
        runs=spec.runs if runs is None else runs,
        warmup=spec.warmup if warmup is None else warmup,
        min_time_s=spec.min_time_s if min_time_s is None else min_time_s,
        max_runs=max_runs,
    )


def _session(
    path: Path, providers: tuple[str, ...] | list[str], threads: int
) -> tuple[Any, str, int, dict[str, int], list[str]]:
    """A measuring session: all optimisations, sequential, ``threads`` intra-op threads.

    Returns:
        The session, its provider and threads, the kernels of its optimised graph, and notes
        on what was asked for but not available.

    Raises:
        ModelError: If the file is missing or onnxruntime cannot load it.
    """
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(f"{path}: no such file; pass the path to an exported .onnx model")
    provider, notes = choose_provider(tuple(providers))
    cores = os.cpu_count() or 1
    if threads > cores:
        notes.append(
            f"{threads} threads were asked for; this machine has {cores} cores, "
            f"so {cores} were used (more would oversubscribe and distort timings)"
        )
        threads = cores
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    no_spinning(so)
    try:
        session, graph = session_with_graph(so, path, provider)
        kernels = kernel_counts(graph)
    except Exception as err:
        raise ModelError(
            f"{path}: onnxruntime cannot load the model ({str(err).splitlines()[0]})"
        ) from None
    return session, provider, threads, kernels, notes


def measure_local_many(
    paths: list[Path],
    profile: DeviceProfile,
    *,
    rounds: int = 40,
    runs: int = 5,
    min_time_s: float = MIN_TIME_IN_TURN_S,
) -> list[LatencyResult]:
    """Latency of several models timed in turn on this machine (A, B, C, A, B, C, …).

    Every model gets its own session first (the profile's provider and threads); then each
    round times ``runs`` single inferences of every model after 3 untimed ones, so drift
    between minutes hits every model alike; rounds go on until ``min_time_s`` has passed
    (see :func:`_time_in_turn`). Each result summarises a model's inference times. Models
    whose files add up to more than :data:`MAX_OPEN_BYTES` are timed in groups that stay
    under it (each group in turn).

    Raises:
        ModelError: If a model cannot be loaded.
        LatencyError: If an inference fails.
    """
    groups: list[list[Path]] = [[]]
    held = 0
    for p in map(Path, paths):
        size = p.stat().st_size if p.is_file() else 0
        if groups[-1] and held + size > MAX_OPEN_BYTES:
            groups.append([])
            held = 0
        groups[-1].append(p)
        held += size
    return [r for group in groups for r in _timed_in_turn(group, profile, rounds, runs, min_time_s)]


def _timed_in_turn(
    paths: list[Path], profile: DeviceProfile, rounds: int, runs: int, min_time_s: float
) -> list[LatencyResult]:
    spec = profile.runtime
    sessions = [_session(p, spec.providers, spec.threads) for p in paths]
    try:
        models = [(s[0], random_feed(s[0])) for s in sessions]
        times = _time_in_turn(models, rounds, runs, 3, min_time_s)
    except Exception as err:
        raise LatencyError(f"inference failed in onnxruntime ({err})") from None
    return [
        summarize(
            [ms for r in t for ms in r],
            source=SourceName.LOCAL,
            provider=s[1],
            threads=s[2],
            kernels=s[3],
            notes=tuple(s[4]),
        )
        for t, s in zip(times, sessions, strict=True)
    ]


def measure_onnx(
    onnx_path: str | Path,
    *,
    providers: tuple[str, ...] | list[str] = ("CPUExecutionProvider",),
    threads: int = 1,
    runs: int = 50,
    warmup: int = 10,
    min_time_s: float = 0.5,
    max_runs: int = 5000,
    source: str = SourceName.LOCAL,
) -> LatencyResult:
    """Measures latency with onnxruntime on this machine with explicit session settings.

    Runs ``warmup`` untimed inferences, then times single inferences until at least ``runs``
    were done *and* ``min_time_s`` passed (capped at ``max_runs``), which keeps the median
    stable for tiny models. This is what both the ``local`` source and the benchmark server
    (``hwcompress serve``) run.

    Args:
        onnx_path: The model.
        providers: Execution providers in order of preference (the first available is used).
        threads: Intra-op threads (capped at this machine's cores, with a note).
        runs: Minimum timed runs.
        warmup: Untimed runs first.
        min_time_s: Minimum total timed duration.
        max_runs: Upper bound on timed runs.
        source: The ``source`` the result names.

    Returns:
        Latency statistics, the provider and threads used, and the kernels that ran.

    Raises:
        ModelError: If onnxruntime cannot load the model.
        LatencyError: If inference fails.
    """
    path = Path(onnx_path)
    session, provider, threads, kernels, notes = _session(path, providers, threads)
    feed = random_feed(session)
    times: list[float] = []
    try:
        for _ in range(warmup):
            session.run(None, feed)
        start = time.perf_counter()
        while len(times) < max_runs and (
            len(times) < runs or time.perf_counter() - start < min_time_s
        ):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - t0) * 1e3)
    except Exception as err:
        raise LatencyError(f"{path}: inference failed in onnxruntime ({err})") from None
    return summarize(
        times,
        source=source,
        provider=provider,
        threads=threads,
        kernels=kernels,
        notes=tuple(notes),
    )
