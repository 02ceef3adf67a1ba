"""Stage 3 (search) on iris: samplers, pruning, budgets, failures, resume, CV, refit, parallel, report.

Each trial trains the tiny iris MLP of ``tests/conftest.py`` (30 epochs, ~0.1 s), so a
search of a few trials takes seconds.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from tests.conftest import TINY_RECIPE

from modelyard import data as data_stage
from modelyard import tune as tune_stage
from modelyard.config import load_recipe, validate_recipe
from modelyard.core.errors import ConfigError, TrainingError
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import open_dataset
from modelyard.report import render_run_report
from modelyard.store import Store
from modelyard.store.context import stage_run
from modelyard.tune.study import journal_path, open_storage

LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
HIDDEN = {"type": "categorical", "choices": [[8], [32]]}


def _recipe(tune: dict[str, Any], *, train: dict[str, Any] | None = None) -> Any:
    raw = yaml.safe_load(TINY_RECIPE)
    raw["train"].update(train or {})
    raw["tune"] = {"startup_trials": 2, **tune}
    return validate_recipe(raw, source="r.yaml")


def _dataset(store: Store, recipe: Any) -> DatasetRef:
    with stage_run(store, kind="data", name=recipe.name, config={}) as ctx:
        return data_stage.run(recipe, ctx=ctx)


def _search(store: Store, recipe: Any, dataset: DatasetRef | None = None, **kwargs: Any) -> tune_stage.TuneResult:
    dataset = dataset or _dataset(store, recipe)
    with stage_run(store, kind="tune", name=recipe.name, config={}) as ctx:
        return tune_stage.run(recipe, dataset, ctx=ctx, **kwargs)


def _states(result: tune_stage.TuneResult) -> list[str]:
    return [r["state"] for r in result.trials]


def test_tpe_search_links_trials_writes_best_recipe_and_is_repeatable(store: Store, tmp_path: Path) -> None:
    recipe = _recipe({"n_trials": 5, "pruner": "none", "space": {"train.optimizer.lr": LR,
                                                                   "model.params.hidden": HIDDEN}})
    result = _search(store, recipe)
    assert _states(result) == ["complete"] * 5
    # Every trial is a run of kind trial under the search run, holding the sampled params.
    children = store.runs.list(parent_run_id=result.search_run_id)
    assert sorted(c["kind"] for c in children) == ["trial"] * 5
    assert {r["run_id"] for r in result.trials} == {c["id"] for c in children}
    first = result.trials[0]
    assert store.runs.params(first["run_id"])["tune.train.optimizer.lr"] == first["params"]["train.optimizer.lr"]
    # The best trial's model is the final model; the best config is a complete recipe without tune:.
    best = max(result.trials, key=lambda r: r["value"])
    assert result.best_value == best["value"] and result.model.id == best["model"]
    written = load_recipe(result.best_recipe_path)
    assert written.tune is None
    assert written.train.optimizer.lr == best["params"]["train.optimizer.lr"]
    assert written.model.params["hidden"] == best["params"]["model.params.hidden"]
    summary = store.runs.get(result.search_run_id)["summary"]
    assert summary["best_trial"] == result.best_trial and summary["trials/complete"] == 5
    assert 0.0 <= result.overhead["overhead_fraction"] < 1.0
    # Same seed, new store: the same trials with the same values (the search is repeatable).
    from modelyard.store import open_store

    with open_store(tmp_path / "again") as other:
        again = _search(other, recipe)
    assert [r["params"] for r in again.trials] == [r["params"] for r in result.trials]
    assert [r["value"] for r in again.trials] == [r["value"] for r in result.trials]


def test_grid_runs_each_point_once_and_stops_when_exhausted(store: Store) -> None:
    recipe = _recipe({"sampler": "grid", "pruner": "none", "n_trials": 50, "space": {
        "train.optimizer.lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.02},
        "model.params.hidden": HIDDEN}})
    result = _search(store, recipe)
    points = sorted((r["params"]["train.optimizer.lr"], r["params"]["model.params.hidden"][0]) for r in result.trials)
    assert points == [(0.01, 8), (0.01, 32), (0.03, 8), (0.03, 32)]  # 2 x 2 grid, not 50 trials


@pytest.mark.parametrize("sampler", ["random", "cmaes"])
def test_other_samplers(store: Store, sampler: str) -> None:
    if sampler == "cmaes":
        pytest.importorskip("cmaes")  # Optuna's CMA-ES sampler needs the cmaes package
    recipe = _recipe({"sampler": sampler, "pruner": "none", "n_trials": 3, "space": {
        "train.optimizer.lr": LR, "train.optimizer.weight_decay": {"type": "float", "low": 0.0, "high": 0.1}}})
    result = _search(store, recipe)
    assert _states(result) == ["complete"] * 3
    lrs = [r["params"]["train.optimizer.lr"] for r in result.trials]
    assert len(set(lrs)) == 3 and all(1e-3 <= lr <= 1e-1 for lr in lrs)


@pytest.mark.parametrize("pruner", ["median", "halving", "hyperband"])
def test_pruners_stop_trials_early(store: Store, pruner: str) -> None:
    # Grid seed 8 orders the 6 points good, good, bad, bad, good, bad (lr 1e-5 cannot learn iris in
    # 30 epochs): the pruners see the bad ones trail the median / their rung and stop them early.
    recipe = _recipe({"sampler": "grid", "seed": 8, "pruner": pruner, "n_trials": 6, "warmup_steps": 1,
                      "space": {
        "train.optimizer.lr": {"type": "categorical", "choices": [0.05, 1e-5]}, "seed": {
            "type": "categorical", "choices": [1, 2, 3]}}})
    result = _search(store, recipe)
    pruned = [r for r in result.trials if r["state"] == "pruned"]
    assert any(r["params"]["train.optimizer.lr"] == 1e-5 for r in pruned), _states(result)
    steps_per_epoch = math.ceil(open_dataset(store, _dataset(store, recipe)).stats["rows"]["train"] / 32)
    assert all(r["steps"] < 30 * steps_per_epoch for r in pruned)
    assert all(r["stopped"] == "pruned" for r in pruned)


def test_failed_trial_is_recorded_and_the_search_goes_on(store: Store) -> None:
    # lr 1e30 without clipping makes the loss NaN in the first epoch (TrainingError in train).
    recipe = _recipe({"sampler": "grid", "pruner": "none", "n_trials": 5, "space": {
        "train.optimizer.lr": {"type": "categorical", "choices": [1e30, 0.02]}}},
        train={"grad_clip": None, "optimizer": {"name": "sgd", "lr": 0.02, "weight_decay": 0.0}})
    result = _search(store, recipe)
    by_lr = {r["params"]["train.optimizer.lr"]: r for r in result.trials}
    assert by_lr[1e30]["state"] == "fail" and "loss is nan" in by_lr[1e30]["error"]
    assert store.runs.get(by_lr[1e30]["run_id"])["status"] == "failed"
    assert by_lr[0.02]["state"] == "complete" and result.best_params == {"train.optimizer.lr": 0.02}


def test_no_completed_trial_is_an_error(store: Store) -> None:
    recipe = _recipe({"n_trials": 2, "pruner": "none", "space": {
        "train.optimizer.lr": {"type": "categorical", "choices": [1e30]}}},
        train={"grad_clip": None, "optimizer": {"name": "sgd", "lr": 0.02, "weight_decay": 0.0}})
    with pytest.raises(TrainingError, match="no trial of study 'tiny-iris' completed \\(2 failed, 0 pruned\\)"):
        _search(store, recipe)


def test_metric_training_never_records_stops_the_search(store: Store) -> None:
    recipe = _recipe({"metric": "valid/f1", "n_trials": 5, "space": {"train.optimizer.lr": LR}})
    with pytest.raises(ConfigError, match="metric 'valid/f1' is never recorded by training \\(recorded: .*"
                                          "valid/accuracy"):
        _search(store, recipe)
    study = optuna.load_study(study_name="tiny-iris", storage=open_storage(journal_path(store, "tiny-iris")))
    assert len(study.trials) == 1  # stopped at the first trial, not 5


def test_minimize_a_loss(store: Store) -> None:
    recipe = _recipe({"metric": "valid/loss", "direction": "minimize", "pruner": "none", "n_trials": 3,
                      "space": {"train.optimizer.lr": LR}})
    result = _search(store, recipe)
    assert result.best_value == min(r["value"] for r in result.trials)


def test_time_budget_stops_cleanly(store: Store) -> None:
    recipe = _recipe({"n_trials": None, "timeout_s": 1.5, "pruner": "none", "space": {"train.optimizer.lr": LR}})
    dataset = _dataset(store, recipe)
    # No trial budget: only the clock ends this search (returning at all is the first check).
    try:
        result = _search(store, recipe, dataset)
    except TrainingError as exc:
        # On a loaded machine even the first trial outlives 1.5 s: the clock stops it (pruned,
        # not failed) and the search says no trial completed. That is a clean stop too.
        assert re.search(r"no trial of study 'tiny-iris' completed \(0 failed, [1-9]\d* pruned\)", exc.message)
        return
    trials = sorted(result.trials, key=lambda r: r["number"])
    assert trials and all(r["state"] in ("complete", "pruned") for r in trials)
    # A running trial finishes, but none starts after the budget is spent: the trials before
    # the last one fit inside it (how many depends on the machine's speed, so it is not pinned).
    assert sum(r["duration_s"] for r in trials[:-1]) < 1.5


def test_existing_study_needs_resume_and_a_matching_space(store: Store) -> None:
    recipe = _recipe({"n_trials": 2, "pruner": "none", "space": {"train.optimizer.lr": LR}})
    dataset = _dataset(store, recipe)
    first = _search(store, recipe, dataset)
    with pytest.raises(ConfigError, match="study 'tiny-iris' already exists \\(2 finished trials\\).*--resume"):
        _search(store, recipe, dataset)
    other = _recipe({"n_trials": 2, "pruner": "none", "space": {"train.optimizer.lr": {**LR, "high": 0.5}}})
    with pytest.raises(ConfigError, match="exists with a different search space or objective"):
        _search(store, other, dataset, resume=True)
    # Resuming with a bigger budget runs only the missing trials; completed ones are kept as they were.
    more = _recipe({"n_trials": 4, "pruner": "none", "space": {"train.optimizer.lr": LR}})
    resumed = _search(store, more, dataset, resume=True)
    assert [r["run_id"] for r in resumed.trials[:2]] == [r["run_id"] for r in first.trials]
    assert len(resumed.trials) == 4
    assert len(store.runs.list(kind="trial", limit=100)) == 4


def test_resume_after_a_kill_marks_the_interrupted_trial_failed(store: Store) -> None:
    recipe = _recipe({"n_trials": 2, "pruner": "none", "space": {"train.optimizer.lr": LR}})
    dataset = _dataset(store, recipe)
    _search(store, recipe, dataset)
    # What a kill mid-trial leaves: a RUNNING trial in the journal and a running trial run.
    study = optuna.load_study(study_name="tiny-iris", storage=open_storage(journal_path(store, "tiny-iris")))
    killed = study.ask()
    run_id = store.runs.create(kind="trial", name="tiny-iris", config={})
    killed.set_user_attr("run_id", run_id)
    resumed = _search(store, _recipe({"n_trials": 4, "pruner": "none", "space": {"train.optimizer.lr": LR}}),
                      dataset, resume=True)
    assert [r["state"] for r in resumed.trials] == ["complete", "complete", "fail", "complete"]
    assert resumed.trials[2]["error"] == "interrupted (the search was killed)"
    assert store.runs.get(run_id)["status"] == "failed"


def test_cross_validation_mean_and_std_over_folds(store: Store) -> None:
    recipe = _recipe({"n_trials": 2, "pruner": "none", "cv": {"folds": 3}, "space": {"train.optimizer.lr": LR}})
    dataset = _dataset(store, recipe)
    result = _search(store, recipe, dataset)
    for row in result.trials:
        assert len(row["fold_values"]) == 3
        assert row["value"] == pytest.approx(sum(row["fold_values"]) / 3)
        assert row["std"] == pytest.approx(float(__import__("numpy").std(row["fold_values"])))
        folds = store.runs.list(parent_run_id=row["run_id"])
        assert sorted(f["kind"] for f in folds) == ["train"] * 3
    # The folds' held-out rows partition train + valid; test rows never enter a fold.
    base = open_dataset(store, dataset)
    pool = base.stats["rows"]["train"] + base.stats["rows"]["valid"]
    fold_sets = [aid for aid, kind in store.runs.artifacts(result.search_run_id) if kind == "dataset"]
    held = sorted(open_dataset(store, DatasetRef(id=a)).stats["rows"]["valid"] for a in fold_sets)
    assert sum(held) == pool and len(held) == 3
    # With CV the final model is the best config retrained on the original split, in its own run.
    final = store.runs.get(result.model_run_id)
    assert final["kind"] == "train" and final["parent_run_id"] == result.search_run_id


def test_refit_trains_the_best_config_on_train_plus_valid(store: Store) -> None:
    recipe = _recipe({"n_trials": 2, "pruner": "none", "refit": True, "space": {"train.optimizer.lr": LR}})
    dataset = _dataset(store, recipe)
    result = _search(store, recipe, dataset)
    base = open_dataset(store, dataset)
    used = store.runs.artifacts(result.model_run_id, role="input")
    refit = open_dataset(store, DatasetRef(id=used[0][0]))
    assert refit.stats["rows"]["train"] == base.stats["rows"]["train"] + base.stats["rows"]["valid"]
    assert refit.stats["rows"]["valid"] == 0
    assert result.model.id not in {r["model"] for r in result.trials}


def test_parallel_processes_capped_at_the_cores(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    recipe = _recipe({"n_trials": 4, "n_jobs": 64, "pruner": "none", "space": {"train.optimizer.lr": LR}})
    with caplog.at_level(logging.WARNING, logger="modelyard.tune"):
        result = _search(store, recipe)
    from modelyard.tune.workers import usable_cores

    cores = usable_cores()
    assert any(f"tune.n_jobs 64 is more than the {cores} usable cores: capped at {cores}" in m
               for m in caplog.messages)
    assert result.warnings and result.overhead["workers"] == cores
    assert len(result.trials) == 4 and _states(result) == ["complete"] * 4
    assert len({r["run_id"] for r in result.trials}) == 4


def test_report_has_the_search_section(store: Store, tmp_path: Path) -> None:
    recipe = _recipe({"n_trials": 4, "pruner": "none", "space": {"train.optimizer.lr": LR,
                                                                   "model.params.hidden": HIDDEN}})
    result = _search(store, recipe)
    page = render_run_report(store, result.search_run_id, out_dir=tmp_path).read_text()
    assert "Search: study tiny-iris" in page
    for alt in ("optimization history", "parallel coordinates", "intermediate values"):
        assert f'alt="{alt}"' in page
    search = json.loads((store.artifacts.path(result.artifact) / "search.json").read_text())
    assert search["best"]["trial"] == result.best_trial and len(search["trials"]) == 4


def test_pipeline_runs_the_search_then_evaluates_and_registers(store: Store, tmp_path: Path) -> None:
    from modelyard.pipeline import run_recipe

    recipe = _recipe({"n_trials": 2, "pruner": "none", "space": {"train.optimizer.lr": LR}})
    result = run_recipe(recipe, store, report_dir=tmp_path)
    assert set(result.stage_runs) == {"data", "tune", "train", "evaluate", "explain"}
    tune_run = store.runs.get(result.stage_runs["tune"])
    assert result.model.id == tune_run["summary"]["model"]
    assert result.version is not None and result.version.run_id == result.stage_runs["train"]
    assert "Search: study tiny-iris" in result.report_path.read_text()
