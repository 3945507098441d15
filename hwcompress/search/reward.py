"""The N2N reward and how hardware constraints enter it.

``R = Rc · Ra`` with compression ``C = 1 − size_student / size_teacher``, ``Rc = C(2 − C)``
and ``Ra = acc_student / acc_teacher`` (validation split). A student that cannot be built or
evaluated gets −1.

Constraints ``A·x ≤ b`` from the device profile:

- ``hard`` (default, as in N2N): a student that violates any row gets −1, like an invalid
  architecture.
- ``soft``: ``R − λ(t)·P`` where ``P`` is the summed relative violation
  (:meth:`ConstraintMatrix.penalty`) and ``λ`` grows linearly from ``penalty_start`` in the
  first episode to ``penalty_end`` in the last, so early exploration may cross a budget but
  the final policy is pushed firmly inside it. The result is clipped at −1.

Objectives: ``n2n`` (default) is ``Rc · Ra`` above. ``accuracy`` is AMC's resource-constrained
mode, used when the user states a target (``--target params=10x``): the targets are rows of
``A·x ≤ b``, a feasible student's reward is ``Ra`` alone (any size within the budget is as
good as another) and an infeasible one gets the penalty of the constraint mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hwcompress.hardware.constraints import ConstraintMatrix
from hwcompress.search.names import StageName

SIZE_METRICS = ("params", "weight_bytes", "macs")
#: Stages whose compression term counts another size than ``--size-metric``: the quantization
#: stage's bit-widths change weight bytes only; drl-prune's stages co-learn accuracy and FLOPs
#: (Zhan et al.), so they count multiply-accumulates.
STAGE_SIZE_METRIC: dict[str, str] = {
    StageName.QUANTIZATION: "weight_bytes",
    StageName.CHANNELS: "macs",
    StageName.KERNELS: "macs",
}
CONSTRAINT_MODES = ("hard", "soft")
OBJECTIVES = ("n2n", "accuracy")


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """How rewards are computed."""

    size_metric: str = "params"
    constraint_mode: str = "hard"
    penalty_start: float = 0.5
    penalty_end: float = 4.0
    objective: str = "n2n"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}")
        if self.size_metric not in SIZE_METRICS:
            raise ValueError(f"size_metric must be one of {SIZE_METRICS}")
        if self.constraint_mode not in CONSTRAINT_MODES:
            raise ValueError(f"constraint_mode must be one of {CONSTRAINT_MODES}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


def penalty_weight(config: RewardConfig, episode: int, episodes: int) -> float:
    """λ(t) of the soft mode: linear from ``penalty_start`` to ``penalty_end``."""
    frac = max(episode, 0) / max(episodes - 1, 1)
    return config.penalty_start + (config.penalty_end - config.penalty_start) * min(frac, 1.0)


def compression_reward(size_student: float, size_teacher: float) -> float:
    """``Rc = C(2 − C)`` with ``C = 1 − size_student/size_teacher`` (0 ≤ C ≤ 1)."""
    c = min(max(1.0 - size_student / size_teacher, 0.0), 1.0)
    return c * (2.0 - c)


def reward(
    student: dict[str, float],
    teacher: dict[str, float],
    acc_student: float,
    acc_teacher: float,
    matrix: ConstraintMatrix,
    config: RewardConfig,
    *,
    episode: int = 0,
    episodes: int = 1,
) -> tuple[float, bool]:
    """The reward of one evaluated student.

    Args:
        student: The student's metrics (the constraint metrics plus ``params``).
        teacher: The teacher's metrics.
        acc_student: Student validation accuracy.
        acc_teacher: Teacher validation accuracy.
        matrix: The profile's constraints.
        config: Size metric and constraint mode.
        episode: Current episode (for the soft penalty schedule).
        episodes: Total episodes of the stage.

    Returns:
        The reward and whether the student satisfies every constraint.
    """
    ra = acc_student / acc_teacher if acc_teacher > 0 else 0.0
    if config.objective == "accuracy":
        r = ra
    else:
        r = compression_reward(student[config.size_metric], teacher[config.size_metric]) * ra
    feasible = matrix.feasible(student)
    if not feasible:
        if config.constraint_mode == "hard":
            return -1.0, False
        r = max(-1.0, r - penalty_weight(config, episode, episodes) * matrix.penalty(student))
    return r, feasible
