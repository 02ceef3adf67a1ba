"""tune: the search space as recipe data — validation of bad spaces, sampling, trial recipes, folds."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
import yaml

from modelyard.config import validate_recipe
from modelyard.config.tune import CrossValidationConfig, TuneConfig, grid_size, grid_values
from modelyard.core.errors import ConfigError, DataError
from modelyard.tune.folds import fold_indices
from modelyard.tune.space import check_model_params, space_fingerprint, suggest, trial_recipe
from modelyard.tune.workers import split_budget
from tests.conftest import TINY_RECIPE

LR = {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}


def _recipe(tune: dict[str, Any], **top: Any) -> Any:
    raw = yaml.safe_load(TINY_RECIPE)
    raw.update(top)
    raw["tune"] = tune
    return validate_recipe(raw, source="r.yaml")


def _error(tune: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        _recipe(tune)
    return str(info.value)


# --- bad input: each is refused at validation time, naming the path and the value -------------

def test_empty_space() -> None:
    assert "space is empty" in _error({"space": {}})


def test_low_greater_than_high() -> None:
    message = _error({"space": {"train.optimizer.lr": {"type": "float", "low": 0.1, "high": 0.01}}})
    assert "tune.space.train.optimizer.lr" in message and "low 0.1 is greater than high 0.01" in message


def test_log_scale_needs_positive_low() -> None:
    message = _error({"space": {"train.optimizer.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}})
    assert "log-scale dimension needs low > 0" in message


def test_int_log_scale_needs_positive_low() -> None:
    message = _error({"space": {"train.batch_size": {"type": "int", "low": -4, "high": 64, "log": True}}})
    assert "needs low > 0" in message


def test_path_not_in_schema_with_did_you_mean() -> None:
    # v0 recipes kept lr flat under train: the suggestion points at where it lives now.
    message = _error({"space": {"train.lr": LR}})
    assert "'train.lr' is not a recipe field" in message
    assert "did you mean 'train.optimizer.lr'" in message
    assert "did you mean 'train.epochs'" in _error({"space": {"trian.epochs": {"type": "int", "low": 1, "high": 3}}})


def test_fixed_paths_cannot_be_searched() -> None:
    assert "cannot be searched" in _error({"space": {"name": {"type": "categorical", "choices": ["a", "b"]}}})


def test_categorical_without_choices() -> None:
    message = _error({"space": {"train.optimizer.name": {"type": "categorical", "choices": []}}})
    assert "needs at least one choice" in message


def test_grid_with_continuous_dimension_and_no_step() -> None:
    message = _error({"sampler": "grid", "space": {"train.optimizer.lr": {"type": "float", "low": 0.01, "high": 0.1}}})
    assert "grid search needs a step for the continuous dimension train.optimizer.lr" in message


def test_objective_must_be_a_recorded_series() -> None:
    assert "must be a recorded series" in _error({"metric": "accuracy", "space": {"train.optimizer.lr": LR}})


def test_a_budget_is_required() -> None:
    assert "needs a budget" in _error({"n_trials": None, "space": {"train.optimizer.lr": LR}})


def test_condition_on_unknown_dimension() -> None:
    message = _error({"space": {"train.schedule.warmup": {"type": "float", "low": 0, "high": 0.2,
                                                          "when": {"train.optimizer.name": "sgd"}}}})
    assert "not a dimension of the space" in message


def test_ray_backend_needs_an_address() -> None:
    assert "needs ray_address" in _error({"backend": "ray", "space": {"train.optimizer.lr": LR}})


def test_model_params_checked_against_the_factory() -> None:
    recipe = _recipe({"space": {"model.params.hiden": {"type": "categorical", "choices": [[8], [16]]}}})
    assert recipe.tune is not None
    with pytest.raises(ConfigError, match="unknown parameter of model 'mlp' 'hiden' \\(did you mean 'hidden'"):
        check_model_params(recipe, recipe.tune)


# --- sampling and trial recipes ---------------------------------------------------------------

CONDITIONAL = {"space": {
    "train.optimizer.name": {"type": "categorical", "choices": ["adamw", "sgd"]},
    "train.schedule.warmup": {"type": "float", "low": 0.0, "high": 0.2, "when": {"train.optimizer.name": "sgd"}},
    "model.params.hidden": {"type": "categorical", "choices": [[8], [16, 8]]},
}}


def test_conditional_dimension_sampled_only_when_its_condition_holds() -> None:
    recipe = _recipe(CONDITIONAL)
    sgd = suggest(optuna.trial.FixedTrial({"train.optimizer.name": "sgd", "train.schedule.warmup": 0.1,
                                           "model.params.hidden": "[16, 8]"}), recipe.tune)
    assert sgd == {"train.optimizer.name": "sgd", "train.schedule.warmup": 0.1, "model.params.hidden": [16, 8]}
    adamw = suggest(optuna.trial.FixedTrial({"train.optimizer.name": "adamw", "model.params.hidden": "[8]"}),
                    recipe.tune)
    assert adamw == {"train.optimizer.name": "adamw", "model.params.hidden": [8]}


def test_trial_recipe_is_revalidated_and_has_no_tune_section() -> None:
    recipe = _recipe(CONDITIONAL)
    trial = trial_recipe(recipe, {"train.optimizer.name": "sgd", "train.schedule.warmup": 0.1,
                                  "model.params.hidden": [16, 8]})
    assert trial.tune is None
    assert trial.train.optimizer.name == "sgd" and trial.train.schedule.warmup == 0.1
    assert trial.model.params["hidden"] == [16, 8]
    assert recipe.train.optimizer.name == "adamw"  # the base recipe is untouched
    # A sampled value the schema refuses fails like any bad recipe: named by trial, path and value.
    with pytest.raises(ConfigError, match=r"trial 3: train.schedule.warmup: .* \(got 1.5\)"):
        trial_recipe(recipe, {"train.schedule.warmup": 1.5}, source="trial 3")


def test_grid_values_and_size() -> None:
    cfg = TuneConfig(sampler="grid", space={
        "train.optimizer.lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01},
        "train.batch_size": {"type": "int", "low": 16, "high": 64, "step": 16},
        "train.optimizer.name": {"type": "categorical", "choices": ["adamw", "sgd"]}})
    assert grid_values(cfg.space["train.optimizer.lr"]) == [0.01, 0.02, 0.03]
    assert grid_values(cfg.space["train.batch_size"]) == [16, 32, 48, 64]
    assert grid_size(cfg) == 3 * 4 * 2


def test_fingerprint_follows_space_and_recipe_not_budget() -> None:
    base = _recipe({"space": {"train.optimizer.lr": LR}})
    more_trials = _recipe({"n_trials": 99, "n_jobs": 2, "sampler": "random", "space": {"train.optimizer.lr": LR}})
    other_space = _recipe({"space": {"train.optimizer.lr": {**LR, "high": 0.5}}})
    other_recipe = _recipe({"space": {"train.optimizer.lr": LR}}, seed=4)
    assert space_fingerprint(base) == space_fingerprint(more_trials)
    assert space_fingerprint(base)["space"] != space_fingerprint(other_space)["space"]
    assert space_fingerprint(base)["recipe"] != space_fingerprint(other_recipe)["recipe"]


def test_split_budget() -> None:
    assert split_budget(7, 2) == [4, 3]
    assert split_budget(1, 2) == [1, 0]
    assert split_budget(None, 3) == [None, None, None]


# --- folds ------------------------------------------------------------------------------------

def test_stratified_folds_partition_the_rows_and_keep_proportions() -> None:
    labels = np.array([0] * 30 + [1] * 15)
    folds = fold_indices(labels, CrossValidationConfig(folds=3), seed=0, classification=True)
    held_out = np.concatenate([va for _, va in folds])
    assert sorted(held_out.tolist()) == list(range(45))  # every row is held out exactly once
    for train_rows, valid_rows in folds:
        assert not set(train_rows) & set(valid_rows)
        assert np.bincount(labels[valid_rows]).tolist() == [10, 5]  # 2:1, as in the whole


def test_folds_refuse_a_class_too_small() -> None:
    with pytest.raises(DataError, match="only 2 train\\+valid row\\(s\\): too few for 3 stratified folds"):
        fold_indices(np.array([0] * 10 + [1] * 2), CrossValidationConfig(folds=3), seed=0, classification=True)
