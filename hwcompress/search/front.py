"""The run's accuracy–latency front, and picking a student from it after the search.

A user with a latency budget wants the most accurate student that meets it on their device.
A run measures every candidate's latency, so its candidates already hold that answer for any
budget, not only the one it searched for: :func:`latency_front` keeps, among the students
that meet every constraint row except the latency rows, those no other student beats on both
measured latency and validation accuracy (each at the highest fidelity it reached), and
:func:`pick` chooses the most accurate one under a given latency
(``hwcompress export RUN --pick latency_ms=2.5`` or ``latency_ms=3x``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwcompress.errors import HwCompressError
from hwcompress.search.candidate import Status

__all__ = ["latency_front", "pick", "pick_checkpoint"]


def _latency_row(name: str) -> bool:
    return name == "latency" or "latency" in name


def eligible(cand: dict[str, Any]) -> bool:
    """A measured student that meets every constraint row except those on latency."""
    if cand.get("status") != Status.OK or "latency_ms" not in cand.get("metrics", {}):
        return False
    slack = cand.get("slack") or {}
    return all(v >= 0 for row, v in slack.items() if not _latency_row(row))


def latency_front(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The Pareto front of measured latency against validation accuracy.

    Args:
        results: A run's ``results.json`` content (its ``candidates``).

    Returns:
        One entry per front student, fastest first: ``id``, ``stage``, ``method``,
        ``label``, ``latency_ms``, ``val_accuracy``, ``params``, ``fidelity``, ``weights``
        (the checkpoint, relative to the run folder) and ``feasible`` (within the run's own
        latency rows too).
    """
    cands = [c for c in results.get("candidates", []) if eligible(c)]
    cands.sort(key=lambda c: (c["metrics"]["latency_ms"], -c["metrics"]["val_accuracy"]))
    front: list[dict[str, Any]] = []
    for c in cands:
        acc = float(c["metrics"]["val_accuracy"])
        if front and acc <= front[-1]["val_accuracy"]:
            continue
        front.append(
            {
                "id": c["id"],
                "stage": c.get("stage"),
                "method": c.get("method"),
                "label": c.get("label", ""),
                "latency_ms": float(c["metrics"]["latency_ms"]),
                "val_accuracy": acc,
                "params": c["metrics"].get("params"),
                "fidelity": c.get("fidelity", 0),
                "weights": (c.get("artifacts") or {}).get("weights"),
                "feasible": bool(c.get("feasible")),
            }
        )
    return front


def parse_pick(text: str, teacher_ms: float) -> float:
    """The latency bound ``latency_ms=VALUE`` names (``latency_ms=2.5`` or ``=3x``: three
    times faster than the teacher).

    Raises:
        HwCompressError: If ``text`` is not a latency bound.
    """
    from hwcompress.search.target import parse_target

    try:
        target = parse_target(text)
    except HwCompressError as err:
        raise HwCompressError(f"--pick {err}") from None
    if target.metric != "latency_ms":
        raise HwCompressError(
            f"--pick {text!r}: the front is over latency; write latency_ms=VALUE (e.g. "
            "latency_ms=2.5 or latency_ms=3x, three times faster than the teacher)"
        )
    return target.bound({"latency_ms": teacher_ms})


def pick(results: dict[str, Any], text: str) -> dict[str, Any]:
    """The most accurate front student within the latency ``text`` names.

    Raises:
        HwCompressError: If the bound is malformed or no student of the run meets it.
    """
    teacher_ms = float(results.get("teacher", {}).get("metrics", {}).get("latency_ms", 0.0))
    bound = parse_pick(text, teacher_ms)
    front = results.get("front") or latency_front(results)
    within = [f for f in front if f["latency_ms"] <= bound]
    if not within:
        fastest = min((f["latency_ms"] for f in front), default=None)
        hint = (
            f"its fastest student measured {fastest:.4g} ms"
            if fastest is not None
            else "it has no measured student"
        )
        raise HwCompressError(
            f"--pick {text}: no student of this run runs within {bound:.4g} ms ({hint}); "
            "give a larger bound or search again with --target latency_ms=..."
        )
    return max(within, key=lambda f: (f["val_accuracy"], -f["latency_ms"]))


def pick_checkpoint(run_dir: Path, results: dict[str, Any], chosen: dict[str, Any]) -> Path:
    """The checkpoint to export for a picked front student: the run's final product
    (``best/student.pt``, final-distilled) when it is that student, else its candidate file.

    Raises:
        HwCompressError: If the file is missing.
    """
    best = results.get("best") or {}
    if best.get("id") == chosen["id"] and (run_dir / "best" / "student.pt").is_file():
        return run_dir / "best" / "student.pt"
    if not chosen.get("weights"):
        raise HwCompressError(f"{run_dir}: candidate {chosen['id']} has no saved weights")
    path = run_dir / str(chosen["weights"])
    if not path.is_file():
        raise HwCompressError(
            f"{path}: the picked student's checkpoint is missing; the run folder is "
            "incomplete (copy it whole, with candidates/)"
        )
    return path
