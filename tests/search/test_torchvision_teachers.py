"""A search on a torchvision teacher and a 32×32 ImageFolder returns a smaller student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from hwcompress.search import SearchConfig, run_search


def _digits_folder(root: Path, classes: int = 3, per_class: int = 40) -> Path:
    """Digits upscaled to 32×32 RGB PNGs in ImageFolder layout."""
    digits = load_digits()
    for c in range(classes):
        (root / str(c)).mkdir(parents=True)
        images = digits.images[digits.target == c][:per_class]
        for i, img in enumerate(images):
            arr = (img / 16 * 255).astype(np.uint8)
            Image.fromarray(arr).resize((32, 32)).convert("RGB").save(root / str(c) / f"{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.onnx
@pytest.mark.parametrize("teacher", ["squeezenet1_1", "shufflenet_v2_x0_5"])
def test_search_product_is_smaller_than_a_torchvision_teacher(teacher, tiny_search, tmp_path):
    folder = _digits_folder(tmp_path / "images")
    settings = {
        **tiny_search,
        "teacher": f"torchvision:{teacher}",
        "dataset": f"imagefolder:{folder}",
        "episodes": 1,
        "stages": ("removal", "shrinkage"),
    }
    result = run_search(SearchConfig(**settings))
    data = json.loads((Path(settings["out"]) / "results.json").read_text())
    assert result.best is not None
    teacher_params = data["teacher"]["metrics"]["params"]
    assert data["best"]["metrics"]["params"] < teacher_params
    for cand in data["candidates"]:
        if cand["status"] == "ok":
            assert cand["metrics"]["params"] <= teacher_params, cand["genome"]
