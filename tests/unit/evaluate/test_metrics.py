"""Metric plugins agree with scikit-learn / sacrebleu / torch on random inputs; batch forms agree with points."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from modelyard.core.errors import ConfigError, PluginError
from modelyard.plugins import METRICS, load_builtins
from modelyard.plugins.metrics import METRIC_INFO, UndefinedMetric, check_fits

load_builtins()


def _cls_case(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    prob = rng.dirichlet(np.ones(k), n).round(2)  # rounding makes ties, which the AUCs must handle
    prob = np.clip(prob, 1e-3, None)
    prob /= prob.sum(axis=1, keepdims=True)
    return y, prob.argmax(axis=1), prob


SKLEARN_COUNTING = {
    "accuracy": lambda y, p: skm.accuracy_score(y, p),
    "balanced_accuracy": lambda y, p: skm.balanced_accuracy_score(y, p),
    **{f"{kind}_{avg}": (lambda y, p, f=fn, a=avg: f(y, p, average=a, zero_division=0))
       for kind, fn in (("precision", skm.precision_score), ("recall", skm.recall_score))
       for avg in ("macro", "micro", "weighted")},
    **{f"{avg}_f1": (lambda y, p, a=avg: skm.f1_score(y, p, average=a, zero_division=0))
       for avg in ("macro", "micro", "weighted")},
}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 80), k=st.integers(2, 5))
def test_counting_metrics_agree_with_sklearn(seed: int, n: int, k: int) -> None:
    y, pred, prob = _cls_case(seed, n, k)
    pred = np.where(np.random.default_rng(seed + 1).random(n) < 0.3, (pred + 1) % k, pred)  # some errors
    for name, reference in SKLEARN_COUNTING.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns when y_pred has classes y_true lacks
            expected = reference(y, pred)
        got = METRICS.get(name)(y_true=y, y_pred=pred, y_prob=prob)
        assert got == pytest.approx(expected, abs=1e-12), name
        batch = METRIC_INFO[name].batch(y, pred, prob, np.arange(n)[None, :])  # type: ignore[misc]
        assert batch[0] == pytest.approx(got, abs=1e-12), name


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(8, 80), k=st.integers(2, 5))
def test_score_metrics_agree_with_sklearn(seed: int, n: int, k: int) -> None:
    y, pred, prob = _cls_case(seed, n, k)
    y[:k] = np.arange(k)  # every class present, as scikit-learn's multiclass AUC requires
    if k == 2:
        auc, ap = skm.roc_auc_score(y, prob[:, 1]), skm.average_precision_score(y, prob[:, 1])
    else:
        auc = skm.roc_auc_score(y, prob, multi_class="ovr", average="macro")
        ap = np.mean([skm.average_precision_score(y == c, prob[:, c]) for c in range(k)])
    identity = np.arange(n)[None, :]
    for name, expected in (("roc_auc", auc), ("pr_auc", ap), ("log_loss", skm.log_loss(y, prob, labels=range(k)))):
        got = METRICS.get(name)(y_true=y, y_pred=pred, y_prob=prob)
        assert got == pytest.approx(expected, rel=1e-9), name
        assert METRIC_INFO[name].batch(y, pred, prob, identity)[0] == pytest.approx(got, rel=1e-9), name  # type: ignore[misc]


def test_batch_form_equals_point_value_on_each_resample() -> None:
    y, pred, prob = _cls_case(3, 60, 3)
    index = np.random.default_rng(0).integers(0, 60, size=(5, 60))
    for name in ("accuracy", "macro_f1", "roc_auc", "pr_auc", "log_loss", "ece"):
        batch = METRIC_INFO[name].batch(y, pred, prob, index)  # type: ignore[misc]
        for b, rows in enumerate(index):
            point = METRICS.get(name)(y_true=y[rows], y_pred=pred[rows], y_prob=prob[rows])
            assert batch[b] == pytest.approx(point, rel=1e-9), name


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 60))
def test_regression_metrics_agree_with_sklearn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) * 3 + 1
    p = y + rng.normal(size=n)
    expected = {"mae": skm.mean_absolute_error(y, p), "mse": skm.mean_squared_error(y, p),
                "rmse": np.sqrt(skm.mean_squared_error(y, p)), "r2": skm.r2_score(y, p),
                "mape": skm.mean_absolute_percentage_error(y, p)}
    for name, value in expected.items():
        assert METRICS.get(name)(y_true=y, y_pred=p) == pytest.approx(value, rel=1e-9), name


def test_ece_by_hand() -> None:
    # Two rows at confidence 0.9 (one right), two at 0.6 (both right):
    # bins (0.8, 0.8667] and (0.5333, 0.6] → 2/4·|0.9 − 0.5| + 2/4·|0.6 − 1.0| = 0.2 + 0.2 = 0.4
    prob = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    assert METRICS.get("ece")(y_true=y, y_pred=prob.argmax(1), y_prob=prob) == pytest.approx(0.4)


def test_language_metrics_match_torch_and_sacrebleu() -> None:
    import sacrebleu
    import torch

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 7))
    targets = rng.integers(0, 7, 20)
    targets[[3, 9]] = -100  # padding
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ce = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(targets), ignore_index=-100)
    assert METRICS.get("perplexity")(y_true=targets, y_prob=prob) == pytest.approx(float(torch.exp(ce)), rel=1e-9)
    keep = targets != -100
    assert METRICS.get("token_accuracy")(y_true=targets, y_prob=prob) == pytest.approx(
        float((prob.argmax(1)[keep] == targets[keep]).mean()))
    refs = ["the cat sat on the mat", "a quick brown fox jumps"]
    hyps = ["the cat sat on a mat", "the quick brown fox jumped"]
    assert METRICS.get("bleu")(y_true=refs, y_pred=hyps) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert METRICS.get("chrf")(y_true=refs, y_pred=hyps) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)


def test_undefined_metrics_say_why() -> None:
    y = np.zeros(5, dtype=int)
    prob = np.tile([0.7, 0.3], (5, 1))
    with pytest.raises(UndefinedMetric, match="only class 0 is present"):
        METRICS.get("roc_auc")(y_true=y, y_pred=y, y_prob=prob)
    with pytest.raises(UndefinedMetric, match="same"):
        METRICS.get("r2")(y_true=np.ones(4), y_pred=np.arange(4.0))
    with pytest.raises(UndefinedMetric, match="probabilities"):
        METRICS.get("log_loss")(y_true=y, y_pred=y, y_prob=None)


def test_metric_that_does_not_fit_the_task_is_refused_with_the_ones_that_do() -> None:
    with pytest.raises(ConfigError, match="'mae' does not fit a classification task") as info:
        check_fits(["accuracy", "mae"], "classification")
    assert "roc_auc" in str(info.value)
    with pytest.raises(PluginError, match="did you mean 'roc_auc'"):
        check_fits(["roc_acu"], "classification")


def test_language_model_intervals_resample_texts_not_tokens() -> None:
    # 20 texts of 50 tokens; a text is either all right or all wrong, so the 1,000 tokens are
    # really 20 independent observations: the interval must be as wide as 20 draws allow.
    from modelyard.evaluate.scoring import Scores, bootstrap_intervals, group_resamples

    texts = np.repeat(np.arange(20), 50)
    y_true = np.zeros(1000, dtype=np.int64)
    y_pred = np.where(texts % 2 == 0, 0, 1)
    by_token = Scores(y_true=y_true, y_pred=y_pred)
    by_text = Scores(y_true=y_true, y_pred=y_pred, groups=texts)
    kw = {"samples": 400, "confidence": 0.95, "seed": 0, "values": {"token_accuracy": 0.5}}
    narrow = bootstrap_intervals(["token_accuracy"], by_token, **kw)["token_accuracy"]
    wide = bootstrap_intervals(["token_accuracy"], by_text, **kw)["token_accuracy"]
    assert narrow["high"] - narrow["low"] < 0.08  # ≈ 4·sqrt(.25/1000)
    assert wide["high"] - wide["low"] > 0.3  # ≈ 4·sqrt(.25/20)
    # Every resample draws whole texts: token counts are multiples of 50, texts kept together.
    for rows in group_resamples(texts, 5, seed=1):
        assert rows.shape[1] == 1000 and all(np.all(texts[rows[0][i:i + 50]] == texts[rows[0][i]])
                                             for i in range(0, 1000, 50))
