"""The evaluation and explanation stages on breast_cancer with tiny MLPs: numbers, comparison, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from tests.unit.evaluate.fixtures import make_model, prepare

from modelyard import evaluate as evaluate_stage
from modelyard import explain as explain_stage
from modelyard.config.evaluate import EvaluateConfig, FairnessConfig
from modelyard.config.explain import ExplainConfig
from modelyard.core.errors import ConfigError, DataError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.data.artifact import open_dataset
from modelyard.evaluate.predictor import load_predictor
from modelyard.evaluate.scoring import Scores
from modelyard.evaluate.slices import fairness_gaps
from modelyard.store import open_store
from modelyard.store.context import stage_run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with open_store(tmp_path_factory.mktemp("eval") / "store") as store:
        data = prepare(store, {"format": "sklearn", "name": "breast_cancer"})
        good = make_model(store, data, params={"hidden": [16]}, epochs=40, lr=0.01)
        weak = make_model(store, data, params={"hidden": [16]}, epochs=2, lr=0.01, seed=1)
        yield {"store": store, "data": data, "good": good, "weak": weak}


def _evaluate(world: dict[str, Any], cfg: EvaluateConfig, model: ModelRef | None = None,
              data: DatasetRef | None = None, **kw: Any) -> dict[str, Any]:
    store = world["store"]
    with stage_run(store, kind="evaluate", name="t", config={}) as ctx:
        ref = evaluate_stage.run(cfg, model or world["good"], data or world["data"], ctx=ctx, **kw)
    return evaluate_stage.read_report(store, ref)


def test_metrics_intervals_and_analysis_match_sklearn(world: dict[str, Any]) -> None:
    report = _evaluate(world, EvaluateConfig(bootstrap={"samples": 300}, slices=[{"column": "mean radius"}],
                                             threshold={"objective": "f1"}, worst_k=4))
    store, dataset = world["store"], open_dataset(world["store"], world["data"])
    x, y = dataset.arrays("test")
    scores = load_predictor(store, world["good"]).scores(x, y, threshold=report["threshold"]["threshold"])
    assert report["rows"] == len(y) == 142  # 25% of 569 rows
    assert report["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y, scores.y_pred))
    assert report["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores.y_prob[:, 1]))
    assert report["metrics"]["macro_f1"] == pytest.approx(skm.f1_score(y, scores.y_pred, average="macro"))
    assert report["metrics"]["accuracy"] > 0.85  # a 16-unit MLP separates breast_cancer well
    for name, interval in report["intervals"].items():
        assert interval["low"] <= report["metrics"][name] <= interval["high"], name
        assert interval["samples"] == 300
    assert np.array(report["confusion_matrix"]).sum() == 142
    assert sum(report["calibration"]["count"]) == 142
    worst = report["worst_examples"]
    assert len(worst) == 4 and worst[0]["loss"] >= worst[-1]["loss"]
    assert set(worst[0]["input"]) >= {"mean radius", "mean texture"}
    slices = report["slices"][0]
    assert sum(r["rows"] for r in slices["rows"]) == 142 and len(slices["rows"]) == 4  # quartile buckets
    assert [p["level"] for p in report["robustness"]["points"]] == [0.0, 0.1, 0.25, 0.5, 1.0]
    assert report["robustness"]["points"][0]["value"] == pytest.approx(report["metrics"]["accuracy"])
    # Same seed, same report: the bootstrap and the perturbations are seeded.
    again = _evaluate(world, EvaluateConfig(bootstrap={"samples": 300}, slices=[{"column": "mean radius"}],
                                            threshold={"objective": "f1"}, worst_k=4))
    assert again["intervals"] == report["intervals"] and again["robustness"] == report["robustness"]


def test_against_compares_on_the_same_rows(world: dict[str, Any]) -> None:
    report = _evaluate(world, EvaluateConfig(bootstrap={"samples": 200}, robustness=None),
                       against=world["weak"], against_name="t@production")
    comp = report["comparison"]
    assert comp["against"] == "t@production"
    acc = comp["metrics"]["accuracy"]
    assert acc["delta"] == pytest.approx(acc["candidate"] - acc["baseline"])
    assert acc["delta"] > 0 and acc["low"] > 0 and acc["p_better"] > 0.95  # 40 epochs beat 2 epochs
    assert comp["metrics"]["log_loss"]["higher_is_better"] is False


def test_bad_inputs_get_named_errors(world: dict[str, Any], tmp_path: Path) -> None:
    store = world["store"]
    with pytest.raises(ConfigError, match="'mae' does not fit a classification task"):
        _evaluate(world, EvaluateConfig(metrics=["accuracy", "mae"]))
    with pytest.raises(ConfigError, match="slice column 'channel' is not in the dataset") as info:
        _evaluate(world, EvaluateConfig(slices=[{"column": "channel"}], robustness=None))
    assert "mean radius" in str(info.value)
    relabelled = make_model(store, world["data"], epochs=1, label_names=["benign", "cancer"])
    with pytest.raises(DataError, match=r"label sets differ: only in model \['cancer'\], only in dataset "
                                        r"\['malignant'\]"):
        _evaluate(world, EvaluateConfig(), model=relabelled)
    # A model trained on other features: wine's 13 columns against breast_cancer.
    wine = prepare(store, {"format": "sklearn", "name": "wine"})
    with pytest.raises(DataError, match="label sets differ|feature schemas differ"):
        _evaluate(world, EvaluateConfig(), model=make_model(store, wine, epochs=1))
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3, "y": ["p", "q"] * 20})
    frame.to_csv(tmp_path / "t.csv", index=False)
    no_test = prepare(store, {"format": "csv", "path": str(tmp_path / "t.csv")}, columns={"label": "y"},
                      split={"valid": 0.2, "test": 0.0})
    with pytest.raises(DataError, match="test split of dataset .* is empty"):
        _evaluate(world, EvaluateConfig(), model=make_model(store, no_test, epochs=1), data=no_test)
    with pytest.raises(ConfigError, match="binary classification only"):
        _evaluate(world, EvaluateConfig(threshold={"objective": "f1"}), model=make_model(store, wine, epochs=1),
                  data=wine)
    failed = store.runs.list(kind="evaluate", limit=20)
    assert any(r["status"] == "failed" and "slice column" in (r["error"] or "") for r in failed)


def test_fairness_gaps_by_hand() -> None:
    frame = pd.DataFrame({"g": ["a", "a", "a", "a", "b", "b", "b", "b"]})
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    gaps = fairness_gaps(FairnessConfig(group="g"), frame, Scores(y_true=y_true, y_pred=y_pred), ["no", "yes"])
    # positive rates a: 3/4, b: 1/4 → 0.5; true positive rates a: 2/2, b: 1/2 → 0.5
    assert gaps["demographic_parity_difference"] == pytest.approx(0.5)
    assert gaps["equal_opportunity_difference"] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="positive label 'maybe'"):
        fairness_gaps(FairnessConfig(group="g", positive="maybe"), frame, Scores(y_true=y_true, y_pred=y_pred),
                      ["no", "yes"])


def test_explain_tabular_permutation_and_shap(world: dict[str, Any]) -> None:
    store = world["store"]
    cfg = ExplainConfig(methods=["permutation", "shap", "integrated-gradients"], examples=2, repeats=2,
                        gradient_rows=8, shap_samples=20, background=16)
    with stage_run(store, kind="explain", name="t", config={}) as ctx:
        ref = explain_stage.run(cfg, world["good"], world["data"], ctx=ctx)
    report = explain_stage.read_explanation(store, ref)
    features = open_dataset(store, world["data"]).schema.features
    assert len(report["permutation"]["mean"]) == len(features) == 30
    assert max(report["permutation"]["mean"]) > 0  # shuffling some feature costs accuracy
    assert len(report["shap"]["local"]) == 2 and len(report["shap"]["global_mean_abs"]) == 30
    ig = report["integrated_gradients"]
    assert ig["max_delta"] < 0.05  # completeness: attributions sum to f(x) − f(baseline)
    assert len(ig["local"]) == 2 and len(ig["local"][0]) == 30


def test_shap_on_an_image_model_suggests_what_works() -> None:
    with pytest.raises(ConfigError, match="shap cannot explain a image model") as info:
        explain_stage.resolve_methods(["shap"], "image")
    assert "integrated-gradients" in str(info.value)
    assert explain_stage.resolve_methods(["auto"], "tabular") == ["permutation", "shap"]
