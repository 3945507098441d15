"""Quantization-aware training: a calibrated quantized model fine-tuned by distillation.

QAT starts from a trained float model whose quantized copy is already close (post-training
calibration); it fine-tunes, it does not train. So it runs at a tenth of the distillation
learning rate (:data:`QAT_LR_FACTOR`: Adam moves every weight by about the learning rate per
step, which at the float rate throws a calibrated 7-bit grid far off in the first steps), and
it never hands back a model worse on validation than the calibrated one it started from.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from torch import nn

__all__ = ["QAT_LR_FACTOR", "qat_config", "quantization_aware_training"]

#: QAT's learning rate as a share of the float distillation's.
QAT_LR_FACTOR = 0.1


def qat_config(config: Any) -> Any:
    """The :class:`~hwcompress.train.DistillConfig` QAT uses for a float ``config``."""
    # float32 even on a GPU: fake-quantization rounds the float weights it trains
    return replace(config, lr=config.lr * QAT_LR_FACTOR, amp=False)


def quantization_aware_training(
    model: nn.Module,
    teacher: nn.Module,
    data: Any,
    config: Any,
    *,
    teacher_logits: Any = None,
) -> float:
    """Fine-tunes a calibrated quantized ``model`` (in place) by distillation from ``teacher``.

    Args:
        model: A quantized model after :func:`~hwcompress.quant.convert.calibrate`.
        teacher: The model to distil from (the float student or the teacher).
        data: A :class:`~hwcompress.data.DataBundle`.
        config: The float distillation settings; QAT uses :func:`qat_config` of them.
        teacher_logits: Precomputed teacher logits.

    Returns:
        The validation accuracy of the model handed back: the best QAT epoch, or the
        calibrated model if no epoch beat it.
    """
    from hwcompress.quant.convert import clamp_to_activation_ceilings
    from hwcompress.train import distill, evaluate

    start = evaluate(model, data.val)
    calibrated = copy.deepcopy(model.state_dict())
    result = distill(model, teacher, data, qat_config(config), teacher_logits=teacher_logits)
    accuracy = float(result.val_accuracy)
    if clamp_to_activation_ceilings(model):  # a range grew past ReLU6's 6: its grid changed
        accuracy = evaluate(model, data.val)
    if accuracy < start:
        model.load_state_dict(calibrated)
        model.eval()
        return start
    return accuracy
