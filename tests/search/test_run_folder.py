"""A run folder survives kills, full disks and a second process (real processes and files)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hwcompress.errors import MachineError, machine_problem
from hwcompress.search import SearchConfig, load_search_config, run_search
from hwcompress.search.journal import Journal
from hwcompress.search.lock import RunFolderBusy, RunLock

RUN = (
    "import sys, json; from hwcompress.search import SearchConfig, run_search; "
    "run_search(SearchConfig(**json.loads(sys.argv[1])))"
)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_torn_last_line_is_cut_before_the_next_record(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"type": "candidate", "n": 1}\n{"type": "episode", "n": 2}\n{"type": "cand')
    journal = Journal(path)
    assert [r["n"] for r in journal.records()] == [1, 2]
    assert journal.repair() == len('{"type": "cand')  # what a resume reports
    journal.append({"type": "episode", "n": 3})
    journal.append({"type": "episode", "n": 4})
    assert [r["n"] for r in _records(path)] == [1, 2, 3, 4]  # every line parses


def test_a_whole_last_record_that_lost_its_newline_is_kept(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}')
    journal = Journal(path)
    assert journal.repair() == 0
    journal.append({"n": 3})
    assert [r["n"] for r in _records(path)] == [1, 2, 3]


def test_the_products_plan_holds_only_while_nothing_but_its_refinements_follow(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")

    def cand(i):
        return {"type": "candidate", "candidate": {"id": i}}

    journal.append(cand("a"))
    journal.append({"type": "product_plan", "phase": "leaders", "ids": ["a", "b"]})
    journal.append(cand("a"))  # a leader refined, then the process was killed
    assert journal.product_plans() == {"leaders": ["a", "b"]}
    journal.append({"type": "product_plan", "phase": "challengers", "ids": ["c"]})
    assert journal.product_plans() == {"leaders": ["a", "b"], "challengers": ["c"]}
    # resumed with a larger budget, the run searched on: its product is chosen again
    journal.append({"type": "episode", "stage": "shrinkage", "episode": 3})
    assert journal.product_plans() == {}
    journal.append({"type": "product_plan", "phase": "leaders", "ids": ["d"]})
    journal.append(cand("e"))  # a candidate the plan does not name
    assert journal.product_plans() == {}


def test_a_journal_on_a_full_device_is_a_machine_error():
    journal = Journal(Path("/dev/full"))
    with pytest.raises(MachineError, match="no space left on device"):
        journal.append({"n": 1})


def test_machine_problems_are_told_from_candidate_problems(tmp_path):
    with pytest.raises(OSError) as full, open("/dev/full", "w") as fh:
        fh.write("x")
        fh.flush()
    assert machine_problem(full.value) == "no space left on device"
    assert machine_problem(MemoryError()) == "out of memory"
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as err:
            raise RuntimeError("PytorchStreamWriter: unexpected pos 704 vs 598") from err
    except RuntimeError as wrapped:
        assert machine_problem(wrapped) == "no space left on device"
    assert machine_problem(ValueError("channel count must be positive")) is None
    assert machine_problem(FileNotFoundError(2, "No such file")) is None


def test_a_second_process_cannot_write_a_run_folder(tiny_search, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from hwcompress.search.lock import "
            "RunLock; lock = RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); "
            "time.sleep(120)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"process {holder.pid}"):
            run_search(SearchConfig(**{**tiny_search, "out": str(out)}))
        assert out.is_dir() and not (out / "config.json").exists()  # the owner's folder stays
    finally:
        holder.kill()  # kill -9: the lock goes with the process
        holder.wait()
    RunLock(out).acquire().release()


def _run_in_subprocess(settings: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, json.dumps(settings)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _accuracies(candidates) -> dict:
    return {(c.id, c.fidelity): c.metrics["val_accuracy"] for c in candidates}


def _check_resumed(out: Path, reference) -> None:
    """Resumes (or, killed before the run was recorded, restarts) and compares."""
    if (out / "config.json").is_file():
        resumed = run_search(load_search_config(out, {}), resume=True)
    else:
        assert not (out / "journal.jsonl").exists()
        resumed = run_search(SearchConfig(**reference.config))
    journal = _records(out / "journal.jsonl")  # every line parses
    done = [(r["candidate"]["id"], r["candidate"]["fidelity"]) for r in journal if "candidate" in r]
    assert len(done) == len(set(done)), "a candidate was evaluated twice"
    assert sorted(c.id for c in resumed.candidates) == sorted(c.id for c in reference.candidates)
    assert not [c for c in resumed.candidates if c.status != "ok"]
    # the same students at the same fidelities, trained to the same accuracies
    assert _accuracies(resumed.candidates) == _accuracies(reference.candidates)
    assert (out / "results.json").is_file() and (out / "best" / "student.onnx").is_file()


_REFERENCE: dict[str, SimpleNamespace] = {}


@pytest.fixture
def reference(tiny_search, tmp_path_factory):
    """The uninterrupted run the interrupted ones are compared with (run once per session)."""
    if "run" not in _REFERENCE:
        settings = {**tiny_search, "out": str(tmp_path_factory.mktemp("reference") / "run")}
        start = time.perf_counter()
        result = run_search(SearchConfig(**settings))
        _REFERENCE["run"] = SimpleNamespace(
            config=settings, candidates=result.candidates, wall=time.perf_counter() - start
        )
    ref = _REFERENCE["run"]
    return SimpleNamespace(config=dict(ref.config), candidates=ref.candidates, wall=ref.wall)


@pytest.mark.parametrize("moment", [0.05, 0.3, 0.55, 0.8, 0.97])
def test_kill_9_at_any_moment_loses_and_repeats_nothing(reference, tiny_search, tmp_path, moment):
    """Killed at a share of the run's length (start-up, seeds, episodes, promotion, finish)."""
    settings = {**tiny_search, "out": str(tmp_path / "killed")}
    proc = _run_in_subprocess(settings)
    # the child imports torch before it starts: wait for its first file, then the share
    out = Path(settings["out"])
    deadline = time.time() + 120
    while not out.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(moment * reference.wall)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reference.config = {**reference.config, "out": settings["out"]}
    _check_resumed(out, reference)


def test_a_full_disk_stops_the_run_and_resume_finishes_it(reference, tiny_search, tmp_path):
    """Mid-run, the process may write no file over 2 KB (what a full disk does to a write):
    the run stops with one message and records no candidate as failed; resumed on a good
    disk it finishes."""
    settings = {**tiny_search, "out": str(tmp_path / "full")}
    proc = _run_in_subprocess(settings)
    journal = Journal(Path(settings["out"]) / "journal.jsonl")
    deadline = time.time() + 240
    while len(journal.candidates()) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (2048, 2048))
    _, err = proc.communicate(timeout=240)
    assert proc.returncode != 0
    assert "MachineError: the search stopped:" in err and "file too large" in err
    assert "hwcompress search --resume --out" in err
    stopped = journal.candidates()
    assert 3 <= len(stopped) < len(reference.candidates)
    assert all(c.status == "ok" for c in stopped), [c.reason for c in stopped]
    reference.config = {**reference.config, "out": settings["out"]}
    _check_resumed(Path(settings["out"]), reference)


def _first(records: list[dict], test) -> int:
    return next(i for i, r in enumerate(records) if test(r))


@pytest.mark.parametrize(
    "cut",
    [
        # the shrinkage stage's seeds journaled, its first episode not: its policy starts
        # from the weights the stopped run drew, not from a generator the run did not share
        lambda rs: _first(rs, lambda r: r.get("type") == "episode" and r["stage"] == "shrinkage"),
        # stopped in the shrinkage stage's first episode: its policy is fitted to the same
        # student as before, not to one of the episode's own samples
        lambda rs: (
            _first(
                rs,
                lambda r: (
                    r.get("type") == "candidate"
                    and r["candidate"]["stage"] == "shrinkage"
                    and r["candidate"]["episode"] == 0
                ),
            )
            + 1
        ),
        # one shrinkage episode done: the next starts from the structures the first did
        lambda rs: (
            _first(rs, lambda r: r.get("type") == "episode" and r["stage"] == "shrinkage") + 1
        ),
        # the product's leaders chosen and one refined: the rest of the plan, nothing else
        lambda rs: _first(rs, lambda r: r.get("type") == "product_plan") + 2,
    ],
    ids=["shrinkage-start", "in-first-episode", "shrinkage-episode", "product-choice"],
)
def test_a_run_stopped_at_a_decision_resumes_to_the_same_students(reference, tmp_path, cut):
    import shutil

    source = Path(reference.config["out"])
    out = tmp_path / "stopped"
    shutil.copytree(source, out)
    records = _records(out / "journal.jsonl")
    keep = records[: cut(records)]
    (out / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    done = {(r["stage"], r["episode"]) for r in keep if r.get("type") == "episode"}
    for policy in (out / "policies").glob("*_ep*.pt"):
        stage, episode = policy.stem.rsplit("_ep", 1)
        if (stage, int(episode)) not in done:
            policy.unlink()
    (out / "results.json").unlink()
    reference.config = {**reference.config, "out": str(out)}
    _check_resumed(out, reference)
