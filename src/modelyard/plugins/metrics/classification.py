"""Classification metrics: one code path for the point value and the bootstrap.

Counting metrics (accuracy, precision / recall / F1, balanced accuracy) are computed from
confusion matrices, which are built for all bootstrap resamples at once with one
``bincount``; so the point value is the same function on the identity resample. They
follow scikit-learn's conventions (``zero_division=0``; macro averages over the classes
present in ``y_true`` or ``y_pred``), and ``tests/unit/evaluate`` checks that they agree
with scikit-learn on random inputs. Score-based metrics (ROC-AUC, PR-AUC) call
scikit-learn per class (one-vs-rest, macro over the classes present).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from modelyard.plugins.metrics import UndefinedMetric, metric

CLS = ("classification",)


def num_classes(y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None) -> int:
    """K: the probability columns when given, else the largest code seen + 1."""
    if y_prob is not None and y_prob.ndim == 2:
        return int(y_prob.shape[1])
    top = max(int(y_true.max(initial=0)), int(y_pred.max(initial=0)))
    return top + 1


def confusion_batch(y_true: np.ndarray, y_pred: np.ndarray, k: int, index: np.ndarray) -> np.ndarray:
    """(B, K, K) confusion matrices (rows: true, columns: predicted), one per row of ``index`` (B, n)."""
    b = index.shape[0]
    codes = (np.arange(b)[:, None] * k * k + y_true[index] * k + y_pred[index]).ravel()
    return np.bincount(codes, minlength=b * k * k).reshape(b, k, k).astype(np.float64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def _per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)  # true count per class
    predicted = cm.sum(axis=1)
    return {
        "precision": _safe_div(tp, predicted), "recall": _safe_div(tp, support),
        "f1": _safe_div(2 * tp, support + predicted), "support": support, "present": (support + predicted) > 0,
    }


def _average(kind: str, average: str) -> Callable[[np.ndarray], np.ndarray]:
    def reduce(cm: np.ndarray) -> np.ndarray:
        pc = _per_class(cm)
        if average == "micro":
            # single-label: micro precision = micro recall = micro F1 = accuracy
            return _safe_div(np.trace(cm, axis1=1, axis2=2), cm.sum(axis=(1, 2)))
        if average == "weighted":
            return _safe_div((pc[kind] * pc["support"]).sum(axis=1), pc["support"].sum(axis=1))
        return _safe_div((pc[kind] * pc["present"]).sum(axis=1), pc["present"].sum(axis=1))

    return reduce


def _balanced_accuracy(cm: np.ndarray) -> np.ndarray:
    pc = _per_class(cm)
    in_true = pc["support"] > 0
    return _safe_div((pc["recall"] * in_true).sum(axis=1), in_true.sum(axis=1).astype(np.float64))


def _accuracy(cm: np.ndarray) -> np.ndarray:
    return _safe_div(np.trace(cm, axis1=1, axis2=2), cm.sum(axis=(1, 2)))


def _counting(reduce: Callable[[np.ndarray], np.ndarray]) -> tuple[Callable[..., float], Callable[..., np.ndarray]]:
    def batch(y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None, index: np.ndarray) -> np.ndarray:
        k = num_classes(y_true, y_pred, y_prob)
        return reduce(confusion_batch(np.asarray(y_true), np.asarray(y_pred), k, index))

    def point(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
        y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
        if len(y_true) == 0:
            raise UndefinedMetric("no rows")
        return float(batch(y_true, y_pred, y_prob, np.arange(len(y_true))[None, :])[0])

    return point, batch


def _register_counting(name: str, doc: str, reduce: Callable[[np.ndarray], np.ndarray]) -> None:
    point, batch = _counting(reduce)
    point.__doc__ = doc
    point.__name__ = name
    metric(name, tasks=CLS, batch=batch)(point)


_register_counting("accuracy", "Fraction of exact matches.", _accuracy)
_register_counting("balanced_accuracy", "Mean recall over the classes present in y_true.", _balanced_accuracy)
for _avg in ("macro", "micro", "weighted"):
    for _kind in ("precision", "recall"):
        _register_counting(f"{_kind}_{_avg}", f"{_kind.capitalize()}, {_avg}-averaged over classes.",
                           _average(_kind, _avg))
    _register_counting(f"{_avg}_f1", f"F1, {_avg}-averaged over classes.", _average("f1", _avg))


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, list[float]]:
    """Precision, recall, F1 and support per class (lists of length K)."""
    cm = confusion_batch(np.asarray(y_true), np.asarray(y_pred), k, np.arange(len(y_true))[None, :])
    pc = _per_class(cm)
    return {key: [float(v) for v in pc[key][0]] for key in ("precision", "recall", "f1", "support")}


def _probabilities(y_prob: np.ndarray | None, name: str) -> np.ndarray:
    if y_prob is None:
        raise UndefinedMetric(f"{name} needs class probabilities (the model gave only labels)")
    return np.asarray(y_prob, dtype=np.float64)


def _one_vs_rest(score: Callable[[np.ndarray, np.ndarray], float], y_true: np.ndarray, prob: np.ndarray,
                 name: str) -> float:
    present = np.unique(y_true)
    if len(present) < 2:
        raise UndefinedMetric(f"{name} needs both positive and negative examples; only class "
                              f"{int(present[0]) if len(present) else '(none)'} is present in y_true")
    if prob.shape[1] == 2:
        return float(score((y_true == 1).astype(int), prob[:, 1]))
    return float(np.mean([score((y_true == c).astype(int), prob[:, c]) for c in present]))


def _grouped_weights(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per distinct score, scores ascending: two (B, G) arrays."""
    order = np.argsort(score, kind="mergesort")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * (1 - positive[order]), starts, axis=1)
    return pos, neg


def weighted_roc_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC per row of ``weights`` (B, n): the Mann-Whitney statistic with ties counted half (NaN: one class)."""
    pos, neg = _grouped_weights(score, positive.astype(np.float64), weights)
    neg_below = np.cumsum(neg, axis=1) - neg
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)


def weighted_average_precision(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision per row of ``weights`` (B, n), scikit-learn's step definition (NaN: no positive)."""
    pos, neg = _grouped_weights(-score, positive.astype(np.float64), weights)  # descending scores
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    total_pos = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        return (pos / total_pos * precision).sum(axis=1)


def _one_vs_rest_batch(weighted: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                       needs_negatives: bool) -> Callable[..., np.ndarray]:
    def batch(y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None, index: np.ndarray) -> np.ndarray:
        prob = _probabilities(y_prob, "roc_auc")
        y_true = np.asarray(y_true)
        n = len(y_true)
        b = index.shape[0]
        weights = np.bincount((np.arange(b)[:, None] * n + index).ravel(), minlength=b * n).reshape(b, n)
        weights = weights.astype(np.float64)
        if prob.shape[1] == 2:
            return weighted(prob[:, 1], (y_true == 1), weights)
        per_class = []
        for c in range(prob.shape[1]):
            positive = y_true == c
            if not positive.any() or (needs_negatives and positive.all()):
                continue
            per_class.append(weighted(prob[:, c], positive, weights))
        if not per_class:
            return np.full(b, np.nan)
        stacked = np.stack(per_class)
        present = np.isfinite(stacked)
        # macro over the classes present in each resample
        return np.where(present.any(axis=0), np.nansum(stacked, axis=0) / np.maximum(present.sum(axis=0), 1),
                        np.nan)

    return batch


@metric("roc_auc", tasks=CLS, needs_proba=True, batch=_one_vs_rest_batch(weighted_roc_auc, True))
def roc_auc(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
    """Area under the ROC curve (binary; one-vs-rest macro over the classes present for K > 2)."""
    return _one_vs_rest(skm.roc_auc_score, np.asarray(y_true), _probabilities(y_prob, "roc_auc"), "roc_auc")


@metric("pr_auc", tasks=CLS, needs_proba=True, batch=_one_vs_rest_batch(weighted_average_precision, False))
def pr_auc(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
    """Average precision, the area under the precision-recall curve (one-vs-rest macro for K > 2)."""
    return _one_vs_rest(skm.average_precision_score, np.asarray(y_true), _probabilities(y_prob, "pr_auc"), "pr_auc")


def _nll(y_true: np.ndarray, prob: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float64).eps
    prob = np.clip(prob, eps, 1 - eps)
    prob = prob / prob.sum(axis=1, keepdims=True)
    return -np.log(prob[np.arange(len(y_true)), y_true])


def _log_loss_batch(y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None,
                    index: np.ndarray) -> np.ndarray:
    return _nll(np.asarray(y_true), _probabilities(y_prob, "log_loss"))[index].mean(axis=1)


@metric("log_loss", tasks=CLS, needs_proba=True, higher_is_better=False, batch=_log_loss_batch)
def log_loss(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of the true class (cross-entropy, nats)."""
    if len(y_true) == 0:
        raise UndefinedMetric("no rows")
    return float(_nll(np.asarray(y_true), _probabilities(y_prob, "log_loss")).mean())


ECE_BINS = 15


def reliability_bins(y_true: np.ndarray, y_prob: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Top-label reliability: per equal-width confidence bin, mean confidence, accuracy and count."""
    prob = np.asarray(y_prob, dtype=np.float64)
    confidence = prob.max(axis=1)
    correct = (prob.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    # bin b holds confidences in (b/bins, (b+1)/bins]; confidence 0 joins bin 0
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    return {"lower": [b / bins for b in range(bins)], "upper": [(b + 1) / bins for b in range(bins)],
            "count": count.tolist(), "confidence": _safe_div(conf_sum, count).tolist(),
            "accuracy": _safe_div(acc_sum, count).tolist()}


def _ece_batch(y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None, index: np.ndarray) -> np.ndarray:
    prob = _probabilities(y_prob, "ece")
    confidence = prob.max(axis=1)
    correct = (prob.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    which = np.clip(np.ceil(confidence * ECE_BINS).astype(int) - 1, 0, ECE_BINS - 1)
    b, n = index.shape
    codes = (np.arange(b)[:, None] * ECE_BINS + which[index]).ravel()
    size = b * ECE_BINS
    gap = np.bincount(codes, weights=(confidence - correct)[index].ravel(), minlength=size).reshape(b, ECE_BINS)
    return np.abs(gap).sum(axis=1) / n  # Σ_b |Σ(conf − correct)| / n = Σ_b n_b/n · |conf_b − acc_b|


@metric("ece", tasks=CLS, needs_proba=True, higher_is_better=False, batch=_ece_batch)
def ece(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
    """Expected calibration error: top-label, 15 equal-width bins, weighted by bin size."""
    if len(y_true) == 0:
        raise UndefinedMetric("no rows")
    return float(_ece_batch(np.asarray(y_true), np.asarray(y_pred), y_prob, np.arange(len(y_true))[None, :])[0])


__all__ = ["ECE_BINS", "confusion_batch", "num_classes", "per_class_table", "reliability_bins",
           "weighted_average_precision", "weighted_roc_auc"]
