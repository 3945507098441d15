from __future__ import annotations

import pytest
import torch

from hwcompress.arch import Genome, build_spec, build_student
from hwcompress.data import DataConfig, load_data
from hwcompress.models import build_builtin
from hwcompress.train import (
    DistillConfig,
    TeacherLogits,
    TrainConfig,
    distill,
    evaluate,
    train_classifier,
)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    data = load_data(DataConfig(train_limit=600))
    teacher = build_builtin("vgg")
    train_classifier(teacher, data, TrainConfig(epochs=6))
    return data, teacher.eval()


def test_distillation_recovers_a_shrunken_student(trained):
    data, teacher = trained
    spec = build_spec(teacher, data.input_shape)
    student = build_student(
        teacher,
        Genome(keep={"features.4": False}, width={g.key: 0.25 for g in spec.shrinkable}),
        data.input_shape,
        spec=spec,
    )
    before = evaluate(student, data.val)
    result = distill(student, teacher, data, DistillConfig(epochs=8))
    assert result.val_accuracy == pytest.approx(evaluate(student, data.val))
    assert result.val_accuracy > max(before, 0.6)
    assert result.history and result.steps > 0


def test_step_budget_and_shared_teacher_logits(trained):
    data, teacher = trained
    logits = TeacherLogits(teacher, data.train)
    with torch.no_grad():
        x = logits.dataset.tensors[0][:5]
        assert torch.allclose(logits.dataset.tensors[2][:5], teacher(x))
    student = build_builtin("vgg")
    result = distill(
        student, teacher, data, DistillConfig(max_steps=3, epochs=50), teacher_logits=logits
    )
    assert result.steps == 3 and len(result.history) == 1


def test_early_stop_keeps_the_best_epoch(trained):
    data, teacher = trained
    student = build_builtin("vgg")
    result = distill(student, teacher, data, DistillConfig(epochs=30, patience=1, lr=0.5))
    assert result.best_epoch < len(result.history)
    assert evaluate(student, data.val) == pytest.approx(
        max(h["val_accuracy"] for h in result.history)
    )


def test_a_consistent_teacher_sees_the_shifted_images_the_student_sees(trained):
    data, teacher = trained
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    spec = build_spec(teacher, data.input_shape)
    student = build_student(
        teacher, Genome(width={g.key: 0.5 for g in spec.shrinkable}), data.input_shape, spec=spec
    )
    result = distill(student, teacher, data, DistillConfig(epochs=4, shift=1))
    assert result.val_accuracy == pytest.approx(evaluate(student, data.val))
    assert result.val_accuracy > 0.6
    # the teacher ran on a copy: neither its weights nor its mode changed
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training
