"""Re-training variants (distillation, pruning fine-tunes) sees the recipe's online augmentation, as training does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelyard import compress as compress_stage
from modelyard.config.loader import load_recipe
from modelyard.store import open_store
from tests.conftest import TINY_RECIPE

ONLINE = TINY_RECIPE.replace(
    "  split: {valid: 0.15, test: 0.2}\n",
    "  split: {valid: 0.15, test: 0.2}\n"
    "  augment: {mode: online, tabular: [{name: gaussian-noise, p: 1.0, params: {std: 0.1}}]}\n")
COMPRESS = """\
explain: {enabled: false}
compress:
  budget: {metric: accuracy, max_drop: 1.0}
  variants:
    - {method: distill, student: {params: {hidden: [8]}}, epochs: 2, lr: 0.03}
    - {method: prune-structured, sparsity: 0.5, fine_tune_epochs: 1}
"""


def test_distill_and_fine_tune_get_the_online_augmentation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.pipeline import run_recipe

    assert ONLINE != TINY_RECIPE
    calls: list[int] = []
    real = compress_stage.online_augment

    def counting(*args: Any, **kwargs: Any) -> Any:
        augment = real(*args, **kwargs)
        assert augment is not None

        def wrapped(index: torch.Tensor, batch: Any, rng: np.random.Generator) -> Any:
            calls.append(len(index))
            return augment(index, batch, rng)
        return wrapped

    monkeypatch.setattr(compress_stage, "online_augment", counting)
    path = tmp_path / "recipe.yaml"
    path.write_text(ONLINE + COMPRESS, encoding="utf-8")
    with open_store(tmp_path / "store") as store:
        result = run_recipe(load_recipe(path, ()), store)
        summary = store.runs.get(result.stage_runs["compress"])["summary"]["compress"]
    steps = {v["name"]: v["details"].get("steps", v["details"].get("fine_tune_steps")) for v in summary["variants"]}
    assert steps["distill"] > 0 and steps["prune-structured"] > 0
    # Every training micro-batch of both re-trainings went through the augmentation, nothing else did.
    assert len(calls) == steps["distill"] + steps["prune-structured"]
