"""What the search records about each evaluated student."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from hwcompress.enums import NameEnum


class Status(NameEnum):
    """How a candidate's evaluation ended (equal to its plain string, as journaled)."""

    #: Evaluated: metrics, reward and feasibility are set.
    OK = "ok"
    #: Could not be built, trained, exported or measured; ``reason`` says why.
    FAILED = "failed"
    #: Stopped by this machine (out of memory, interrupted): never journaled, the run stops.
    MACHINE = "machine"


def genome_id(key: str) -> str:
    """A short stable id for a genome key (used in file names)."""
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def candidate_seed(run_seed: int, cid: str) -> int:
    """The seed a candidate's construction and training start from: a function of the run's
    seed and the genome only, never of the order candidates are evaluated in."""
    return (run_seed * 1_000_003 + int(cid, 16)) % (2**63)


@dataclass
class Candidate:
    """One evaluated student.

    Attributes:
        id: Short hash of the genome's key.
        stage: The search stage that proposed it.
        episode: The episode in that stage.
        method: ``n2n``, ``random``, ...
        genome: The genome as plain data.
        status: How its evaluation ended (:class:`Status`).
        reason: Why it failed, if it did.
        metrics: params, weight_bytes, macs, peak_activation_bytes, latency_ms,
            val_accuracy, compression.
        reward: The reward (−1 for a failed or, in hard mode, infeasible student).
        feasible: True if every constraint row holds.
        slack: Slack per constraint row.
        artifacts: Paths (relative to the run folder) of the ONNX model and the weights.
        kernels: onnxruntime kernels that ran.
        seconds: Wall time of the evaluation.
        fidelity: How far it was trained: 1 after the short proxy distillation, 2 after the
            longer one the best of its episode (or the product's contenders) receive.
        label: What proposed it beyond the stage, e.g. ``uniform 8x`` for a seed.
        history: Validation accuracy and reward at each fidelity reached, lowest first.
    """

    id: str
    stage: str
    episode: int
    method: str
    genome: dict[str, Any]
    status: Status = Status.OK
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reward: float = -1.0
    feasible: bool = False
    slack: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    kernels: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    fidelity: int = 1
    label: str = ""
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        """Inverse of :meth:`to_dict`."""
        cand = cls(**{**data, "status": Status(data.get("status", Status.OK))})
        if cand.status == Status.OK:  # journals written before bit-widths were a constraint row
            cand.metrics.setdefault("unsupported_bits", 0.0)
        return cand

    def reward_at(self, fidelity: int) -> float:
        """The reward it had at ``fidelity`` (its current one when it never was there)."""
        for rec in self.history:
            if rec.get("fidelity") == fidelity:
                return float(rec["reward"])
        return self.reward
