"""Classification metrics backed by scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from modelyard.plugins import METRICS


@METRICS.register("accuracy")
def accuracy(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
    """Fraction of exact matches."""
    return float(skm.accuracy_score(y_true, y_pred))


@METRICS.register("macro_f1")
def macro_f1(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
    """Unweighted mean of per-class F1 (classes absent from both sides score 0 and are skipped)."""
    return float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
