"""Metric values on arrays: task defaults, point values with undefined reasons, bootstrap intervals.

Everything here works on ``(y_true, y_pred, y_prob)`` arrays, so any model that can be
called on arrays (eager torch today, ONNX / int8 variants later) is scored the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.plugins import METRICS
from modelyard.plugins.metrics import UndefinedMetric, check_fits, info

DEFAULT_METRICS: dict[str, list[str]] = {
    "classification": ["accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1", "precision_macro",
                       "recall_macro", "roc_auc", "pr_auc", "log_loss", "ece"],
    "regression": ["mae", "mse", "rmse", "r2", "mape"],
    "language-modeling": ["perplexity", "token_accuracy"],
    "generation": ["bleu", "chrf"],
}
RESAMPLE_CHUNK = 128  # bootstrap resamples scored at once (memory: chunk × rows indices)


@dataclass
class Scores:
    """One model's predictions on one split."""

    y_true: np.ndarray
    y_pred: np.ndarray
    y_prob: np.ndarray | None = None  # (N, K) class probabilities; None for regression
    groups: np.ndarray | None = None  # language models: the text (row) each scored token belongs to

    def __len__(self) -> int:
        return len(self.y_true)


def metric_names(requested: list[str], task: str) -> list[str]:
    """The requested metrics (or the task's defaults), checked to exist and fit the task.

    Raises:
        PluginError: an unknown name (with close matches).
        ConfigError: a metric that does not fit the task.
    """
    names = list(dict.fromkeys(requested)) or list(DEFAULT_METRICS.get(task, []))
    check_fits(names, task)
    return names


def point_values(names: list[str], scores: Scores) -> tuple[dict[str, float | None], dict[str, str]]:
    """Each metric's value; undefined ones are ``None`` with the reason in the second mapping."""
    values: dict[str, float | None] = {}
    undefined: dict[str, str] = {}
    for name in names:
        try:
            values[name] = float(METRICS.get(name)(y_true=scores.y_true, y_pred=scores.y_pred, y_prob=scores.y_prob))
        except UndefinedMetric as exc:
            values[name], undefined[name] = None, exc.reason
    return values, undefined


def resample_chunks(n: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap row indices, (≤ RESAMPLE_CHUNK, n) at a time; the same seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < samples:
        size = min(RESAMPLE_CHUNK, samples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def group_resamples(groups: np.ndarray, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Cluster-bootstrap row indices, one (1, m) resample at a time: whole groups drawn with replacement.

    A language model is scored per token, but tokens of one text are not independent: resampling
    tokens would make intervals too narrow. Drawing texts (and all their tokens) keeps the unit
    of independence; ``m`` varies with the texts drawn.
    """
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
    for _ in range(samples):
        picks = rng.integers(0, len(members), len(members))
        yield np.concatenate([members[g] for g in picks])[None, :]


def metric_on_resamples(name: str, scores: Scores, index: np.ndarray) -> np.ndarray:
    """The metric on each row of ``index`` (B, n); NaN where it is undefined."""
    batch = info(name).batch
    if batch is not None:
        try:
            return np.asarray(batch(scores.y_true, scores.y_pred, scores.y_prob, index), dtype=np.float64)
        except UndefinedMetric:
            return np.full(index.shape[0], np.nan)
    fn = METRICS.get(name)
    out = np.full(index.shape[0], np.nan)
    for i, rows in enumerate(index):
        try:
            out[i] = fn(y_true=_take(scores.y_true, rows), y_pred=_take(scores.y_pred, rows),
                        y_prob=None if scores.y_prob is None else scores.y_prob[rows])
        except UndefinedMetric:
            pass
    return out


def _take(values: Any, rows: np.ndarray) -> Any:
    return [values[i] for i in rows] if isinstance(values, list) else values[rows]


def bootstrap_intervals(names: list[str], scores: Scores, *, samples: int, confidence: float,
                        seed: int, values: dict[str, float | None]) -> dict[str, dict[str, Any]]:
    """Percentile intervals ``{low, high, confidence, samples, undefined_share}`` of every defined metric.

    Resamples on which a metric is undefined (a class missing from the resample) are left out,
    and their share is reported. With ``scores.groups`` (a language model's tokens, grouped by
    text) whole groups are resampled (:func:`group_resamples`).
    """
    if samples <= 0 or len(scores) == 0:
        return {}
    defined = [name for name in names if values.get(name) is not None]
    draws: dict[str, list[np.ndarray]] = {name: [] for name in defined}
    resamples = (resample_chunks(len(scores), samples, seed) if scores.groups is None
                 else group_resamples(scores.groups, samples, seed))
    for index in resamples:
        for name in defined:
            draws[name].append(metric_on_resamples(name, scores, index))
    alpha = (1 - confidence) / 2
    out: dict[str, dict[str, Any]] = {}
    for name in defined:
        values_b = np.concatenate(draws[name])
        finite = values_b[np.isfinite(values_b)]
        share = 1 - len(finite) / len(values_b)
        if len(finite) < 2:
            continue
        low, high = np.quantile(finite, [alpha, 1 - alpha])
        out[name] = {"low": float(low), "high": float(high), "confidence": confidence, "samples": samples,
                     "undefined_share": round(float(share), 6)}
    return out


__all__ = ["DEFAULT_METRICS", "Scores", "bootstrap_intervals", "group_resamples", "metric_names", "metric_on_resamples",
           "point_values", "resample_chunks"]
