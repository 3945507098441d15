"""The accuracy–latency front of a run and ``export --pick`` on it."""

from __future__ import annotations

import pytest

from hwcompress.errors import HwCompressError
from hwcompress.search.front import latency_front, pick, pick_checkpoint


def _cand(cid, ms, acc, *, ok=True, memory=1.0, target=1.0, params=100):
    return {
        "id": cid,
        "stage": "shrinkage",
        "method": "n2n",
        "status": "ok" if ok else "failed",
        "feasible": memory >= 0 and target >= 0,
        "fidelity": 1,
        "metrics": {"latency_ms": ms, "val_accuracy": acc, "params": params},
        "slack": {"activations_fit_memory": memory, "target_latency_ms": target},
        "artifacts": {"weights": f"candidates/{cid}.pt"},
    }


@pytest.fixture
def results():
    return {
        "teacher": {"metrics": {"latency_ms": 9.0}},
        "candidates": [
            _cand("a", 1.0, 0.80),
            _cand("b", 2.0, 0.85),
            _cand("c", 2.5, 0.84),  # slower and less accurate than b: off the front
            _cand("d", 3.0, 0.90, target=-0.5),  # misses the run's target, still on the front
            _cand("e", 3.5, 0.99, memory=-1),  # does not fit the device's memory
            _cand("f", 0.5, 0.99, ok=False),  # failed
            _cand("g", 4.0, 0.91),
        ],
    }


def test_the_front_keeps_students_no_other_beats_on_both(results):
    front = latency_front(results)
    assert [f["id"] for f in front] == ["a", "b", "d", "g"]
    assert [f["feasible"] for f in front] == [True, True, False, True]
    assert front[0]["weights"] == "candidates/a.pt"


def test_pick_chooses_the_most_accurate_student_within_a_latency(results):
    assert pick(results, "latency_ms=2.7")["id"] == "b"
    assert pick(results, "latency_ms=3")["id"] == "d"
    assert pick(results, "latency_ms=100")["id"] == "g"
    assert pick(results, "latency_ms=3x")["id"] == "d"  # 9 ms / 3
    assert pick(results, "latency_ms=9x")["id"] == "a"  # 1 ms


def test_pick_explains_what_it_cannot_do(results):
    with pytest.raises(HwCompressError, match=r"within 0\.5 ms.*fastest student measured 1 ms"):
        pick(results, "latency_ms=0.5")
    with pytest.raises(HwCompressError, match="latency_ms=VALUE"):
        pick(results, "params=10x")
    with pytest.raises(HwCompressError, match="--pick"):
        pick(results, "latency_ms=fast")


def test_the_product_is_exported_as_finally_trained(results, tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "student.pt").write_bytes(b"x")
    (tmp_path / "candidates").mkdir()
    (tmp_path / "candidates" / "b.pt").write_bytes(b"x")
    results["best"] = {"id": "b"}
    chosen = pick(results, "latency_ms=2.7")
    assert pick_checkpoint(tmp_path, results, chosen) == tmp_path / "best" / "student.pt"
    results["best"] = {"id": "g"}
    assert pick_checkpoint(tmp_path, results, chosen) == tmp_path / "candidates" / "b.pt"
    with pytest.raises(HwCompressError, match="missing"):
        pick_checkpoint(tmp_path, results, pick(results, "latency_ms=1"))
