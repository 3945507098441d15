"""Training: teachers from labels, students by distillation from a teacher."""

from hwcompress.train.distill import (
    DistillConfig,
    DistillResult,
    TeacherLogits,
    distill,
    evaluate,
)
from hwcompress.train.supervised import TrainConfig, train_classifier

__all__ = [
    "DistillConfig",
    "DistillResult",
    "TeacherLogits",
    "TrainConfig",
    "distill",
    "evaluate",
    "train_classifier",
]
