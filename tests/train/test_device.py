"""Where training runs: device names, checks, and training that ends on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwcompress.errors import HwCompressError
from hwcompress.search import SearchConfig
from hwcompress.train import DistillConfig, distill
from hwcompress.train.device import check_device, resolve_device


def test_device_names_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert check_device(" CUDA:1 ") == "cuda:1"
    for bad in ("gpu", "cuda:", "cuda:x", "", "mps0"):
        with pytest.raises(HwCompressError, match=r"auto.*cpu.*cuda"):
            check_device(bad)
    with pytest.raises(HwCompressError, match=r"device: .tpu. is not a device"):
        SearchConfig(profile="x86_host", device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_without_one_says_what_to_do():
    with pytest.raises(HwCompressError, match=r"no CUDA GPU.*set device to cpu"):
        resolve_device("cuda")


def test_distillation_on_the_chosen_device_hands_the_student_back_on_the_cpu():
    from hwcompress.data import DataConfig, load_data

    digits = load_data(DataConfig(train_limit=300))
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    student = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    result = distill(student, teacher, digits, DistillConfig(epochs=1, device="auto"))
    assert 0 <= result.val_accuracy <= 1 and result.steps > 0
    assert all(p.device.type == "cpu" for p in student.parameters())
