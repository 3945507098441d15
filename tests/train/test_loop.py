from __future__ import annotations

import torch
from torch import nn

from hwcompress.train.loop import EarlyStopper


def test_a_tie_in_accuracy_goes_to_the_lower_validation_loss():
    model = nn.Linear(2, 2)
    stopper = EarlyStopper(patience=2)
    assert not stopper.update(model, 1.0, 0, loss=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    # same accuracy, lower loss: the later weights are kept and patience starts again
    assert not stopper.update(model, 1.0, 1, loss=0.2)
    assert stopper.best_epoch == 1 and stopper.bad_epochs == 0
    kept = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    # same accuracy, higher loss: a bad epoch; a lower accuracy: another, and it stops
    assert not stopper.update(model, 1.0, 2, loss=0.3)
    assert stopper.update(model, 0.9, 3, loss=0.01)
    stopper.restore(model)
    assert torch.equal(model.weight, kept) and stopper.best_epoch == 1
    # a higher accuracy wins whatever its loss
    assert not stopper.update(model, 1.01, 4, loss=9.0) and stopper.best_epoch == 4
