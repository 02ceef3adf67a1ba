"""Importances of trials that ran outside our Optuna study (Ray Tune): replayed through the space."""

from __future__ import annotations

import json
import math

import numpy as np
import yaml

from modelyard.config import validate_recipe
from modelyard.tune.study import replayed_importances
from tests.conftest import TINY_RECIPE


def _cfg() -> object:
    raw = yaml.safe_load(TINY_RECIPE)
    raw["tune"] = {"space": {
        "train.optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "model.params.hidden": {"type": "categorical", "choices": [[8], [32]]},      # stored as JSON text
        "model.params.dropout": {"type": "float", "low": 0.0, "high": 0.5, "when": {"model.params.hidden": [[32]]}},
    }}
    return validate_recipe(raw, source="r.yaml").tune


def test_the_parameter_that_decides_the_value_ranks_first() -> None:
    cfg = _cfg()
    rng = np.random.default_rng(0)
    results = []
    for _ in range(40):
        lr = float(10 ** rng.uniform(-4, -1))
        hidden = json.dumps([8] if rng.random() < 0.5 else [32], sort_keys=True)
        raw: dict[str, object] = {"train.optimizer.lr": lr, "model.params.hidden": hidden}
        if hidden == "[32]":
            raw["model.params.dropout"] = float(rng.uniform(0, 0.5))
        value = -abs(math.log10(lr) + 2.5) + 0.01 * rng.normal()                 # only lr matters
        results.append((raw, value))
    found = replayed_importances(cfg, results, seed=0)  # type: ignore[arg-type]
    assert set(found) <= {"train.optimizer.lr", "model.params.hidden", "model.params.dropout"}
    assert max(found, key=found.__getitem__) == "train.optimizer.lr"
    assert found["train.optimizer.lr"] > 0.8
    assert math.isclose(sum(found.values()), 1.0, abs_tol=1e-3)


def test_fewer_than_two_complete_trials_give_none() -> None:
    cfg = _cfg()
    assert replayed_importances(cfg, [], seed=0) == {}  # type: ignore[arg-type]
    assert replayed_importances(cfg, [({"train.optimizer.lr": 1e-3, "model.params.hidden": "[8]"}, 0.5)],  # type: ignore[arg-type]
                                seed=0) == {}
