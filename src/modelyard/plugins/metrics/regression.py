"""Regression metrics; the point value and the bootstrap share one vectorised function each."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modelyard.plugins.metrics import UndefinedMetric, metric

REG = ("regression",)


def _pairs(y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(y_true, dtype=np.float64)[index], np.asarray(y_pred, dtype=np.float64).reshape(-1)[index]


def _mae(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(t - p).mean(axis=1)


def _mse(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return ((t - p) ** 2).mean(axis=1)


def _rmse(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sqrt(_mse(t, p))


def _r2(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    total = ((t - t.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    residual = ((t - p) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.nan)


def _mape(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    # scikit-learn's convention: |y − ŷ| / max(|y|, eps); a fraction, not a percentage
    return (np.abs(t - p) / np.maximum(np.abs(t), np.finfo(np.float64).eps)).mean(axis=1)


def _register(name: str, doc: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], *, higher: bool) -> None:
    def batch(y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None, index: np.ndarray) -> np.ndarray:
        return fn(*_pairs(y_true, y_pred, index))

    def point(*, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None) -> float:
        if len(y_true) == 0:
            raise UndefinedMetric("no rows")
        value = float(batch(y_true, y_pred, None, np.arange(len(y_true))[None, :])[0])
        if np.isnan(value):
            raise UndefinedMetric(f"{name} is undefined when every true value is the same")
        return value

    point.__doc__, point.__name__ = doc, name
    metric(name, tasks=REG, higher_is_better=higher, batch=batch)(point)


_register("mae", "Mean absolute error.", _mae, higher=False)
_register("mse", "Mean squared error.", _mse, higher=False)
_register("rmse", "Root mean squared error.", _rmse, higher=False)
_register("r2", "Coefficient of determination R² (1 − SS_res / SS_tot).", _r2, higher=True)
_register("mape", "Mean absolute percentage error, as a fraction (scikit-learn's convention).", _mape, higher=False)
