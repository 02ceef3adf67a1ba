"""Distilling the digits CNN into another architecture: an ``image-mlp`` student over the flattened pixels."""

from __future__ import annotations

from pathlib import Path

import torch

from modelyard.config.loader import load_recipe
from modelyard.core.refs import ModelRef
from modelyard.runtime import load_model
from modelyard.store import open_store
from tests.conftest import TINY_RECIPE

DIGITS_CNN = (TINY_RECIPE.replace("tiny-iris", "tiny-digits").replace("name: iris", "name: digits")
              .replace("name: mlp\n  params: {hidden: [32], dropout: 0.0}",
                       "name: cnn\n  params: {channels: [8, 16], dropout: 0.0}")
              .replace("epochs: 30", "epochs: 3"))

DISTILL = """\
explain: {enabled: false}
compress:
  budget: {metric: accuracy, max_drop: 100.0}
  variants:
    - {method: distill, name: mlp-student, student: {name: image-mlp, params: {hidden: [32]}}, epochs: 8,
       lr: 0.01}
"""


def test_a_cnn_teacher_distils_into_an_image_mlp(tmp_path: Path) -> None:
    from modelyard.pipeline import run_recipe

    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(DIGITS_CNN + DISTILL, encoding="utf-8")
    with open_store(tmp_path / "store") as store:
        result = run_recipe(load_recipe(recipe_path, ()), store)
        summary = store.runs.get(result.stage_runs["compress"])["summary"]["compress"]
        (variant,) = summary["variants"]
        assert variant["status"] == "accepted", variant["reason"]
        # The student takes the teacher's inputs (1 x 8 x 8) and nothing of its architecture.
        assert variant["details"]["student"] == "image-mlp"
        assert variant["details"]["student_kwargs"] == {"in_channels": 1, "image_size": [8, 8], "num_outputs": 10,
                                                        "hidden": [32]}
        assert variant["parameters"] == 64 * 32 + 32 + 32 * 10 + 10
        assert variant["parameters"] < summary["parent_parameters"]
        assert variant["metrics"]["accuracy"] >= 0.85  # seeded: 0.908 here (teacher 0.981), 359 test digits
        loaded = load_model(store, ModelRef(id=variant["artifact"]))
        assert isinstance(loaded.module[0], torch.nn.Flatten)
        with torch.inference_mode():
            assert loaded.module(torch.rand(3, 1, 8, 8)).shape == (3, 10)
