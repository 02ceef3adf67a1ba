"""`yard run --resume RUN|last`: an interrupted pipeline's training continues from its checkpoint, exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import TINY_RECIPE

from modelyard.config import load_recipe
from modelyard.core.errors import NotFoundError
from modelyard.pipeline import find_resume_train_run, run_recipe

RECIPE = TINY_RECIPE.replace("  epochs: 30\n", "  epochs: 6\n  checkpoint: {every_steps: 4}\n") + \
    "explain: {enabled: false}\nregistration: {enabled: false}\n"


class _Killed(Exception):
    pass


class _KillAt:
    """Progress sink that interrupts training after ``step`` steps (an in-process kill)."""

    def __init__(self, step: int) -> None:
        self.step, self.done = step, 0

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.done += n
        if self.done >= self.step:
            raise _Killed

    def stop(self) -> None:
        pass


def test_run_resume_last_continues_training_bit_for_bit(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    recipe = load_recipe(path)
    with pytest.raises(NotFoundError, match="no interrupted pipeline run of 'tiny-iris'"):
        run_recipe(recipe, store, resume="last")
    straight = run_recipe(recipe, store, report_dir=tmp_path / "a")

    with pytest.raises(_Killed):
        run_recipe(recipe, store, progress=_KillAt(10), report_dir=tmp_path / "b")  # 4 steps/epoch: after step 10
    killed = store.runs.list(kind="pipeline", limit=1)[0]
    assert killed["status"] != "finished"
    train_run = find_resume_train_run(store, "last", name="tiny-iris")
    assert find_resume_train_run(store, killed["id"][:10], name="tiny-iris") == train_run

    resumed = run_recipe(recipe, store, resume="last", report_dir=tmp_path / "c")
    summary = store.runs.get(resumed.stage_runs["train"])["summary"]
    assert summary["resumed_from_step"] == 8
    assert resumed.dataset == straight.dataset
    assert resumed.model == straight.model  # content-addressed: the same weights, bit for bit
    assert resumed.metrics == straight.metrics
    assert store.runs.params(resumed.run_id)["resumed_train_run"] == train_run
    with pytest.raises(NotFoundError, match="is a data run, not a pipeline or train run"):
        find_resume_train_run(store, resumed.stage_runs["data"], name="tiny-iris")
