"""Error analysis: the worst-scored examples, the most-confused class pairs, and curve points."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from modelyard.evaluate.scoring import Scores

MAX_CURVE_POINTS = 200
MAX_IMAGE_VALUES = 64 * 64 * 3  # larger images are stored strided down


def example_losses(scores: Scores, task: str) -> np.ndarray:
    """Per-row loss: negative log-likelihood of the true class, or absolute error."""
    if task == "classification" and scores.y_prob is not None:
        prob = np.clip(scores.y_prob[np.arange(len(scores)), scores.y_true], 1e-12, 1.0)
        return -np.log(prob)
    return np.abs(np.asarray(scores.y_true, dtype=np.float64) - np.asarray(scores.y_pred, dtype=np.float64))


def worst_examples(scores: Scores, task: str, k: int, *, label_names: list[str],
                   inputs: list[Any]) -> list[dict[str, Any]]:
    """The ``k`` rows with the highest loss: row, input, label, prediction, confidence, loss.

    ``inputs`` holds a JSON-ready view of each row (feature values, text, or a small image).
    """
    if k <= 0 or len(scores) == 0:
        return []
    loss = example_losses(scores, task)
    order = np.argsort(-loss, kind="mergesort")[:k]
    out = []
    for row in order:
        entry: dict[str, Any] = {"row": int(row), "loss": float(loss[row]), "input": inputs[row]}
        if task == "classification":
            entry["label"] = label_names[int(scores.y_true[row])]
            entry["prediction"] = label_names[int(scores.y_pred[row])]
            if scores.y_prob is not None:
                entry["confidence"] = float(scores.y_prob[row].max())
                entry["p_label"] = float(scores.y_prob[row, int(scores.y_true[row])])
        else:
            entry["label"], entry["prediction"] = float(scores.y_true[row]), float(scores.y_pred[row])
        out.append(entry)
    return out


def input_view(x: Any, modality: str, *, frame_row: dict[str, Any] | None = None) -> Any:
    """A JSON-ready view of one input row for the report."""
    if modality == "text":
        return str(x)
    if modality == "image":
        arr = np.asarray(x, dtype=np.float32)
        step = 1
        while arr[..., ::step, ::step].size > MAX_IMAGE_VALUES:
            step += 1
        return np.round(arr[..., ::step, ::step], 4).tolist()
    if frame_row is not None:
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in frame_row.items()}
    return np.round(np.asarray(x, dtype=np.float64), 4).tolist()


def confused_pairs(matrix: np.ndarray, label_names: list[str], top: int = 10) -> list[dict[str, Any]]:
    """The largest off-diagonal cells of the confusion matrix: (true, predicted, count, share of the true class)."""
    m = np.asarray(matrix)
    off = m.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="mergesort")[:top]
    out = []
    for cell in flat:
        i, j = divmod(int(cell), m.shape[1])
        if off[i, j] <= 0:
            break
        out.append({"true": label_names[i], "predicted": label_names[j], "count": int(off[i, j]),
                    "share_of_true": float(off[i, j] / max(m[i].sum(), 1))})
    return out


def _thin(*arrays: np.ndarray) -> list[list[float]]:
    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int)) if n else np.array([], int)
    return [[round(float(v), 6) for v in a[keep]] for a in arrays]


def curves(scores: Scores, label_names: list[str]) -> dict[str, Any]:
    """ROC and PR curve points (thinned to ≤ 200), binary or one-vs-rest per class present."""
    if scores.y_prob is None:
        return {}
    y, prob = np.asarray(scores.y_true), scores.y_prob
    classes = [1] if prob.shape[1] == 2 else [c for c in range(prob.shape[1])]
    roc: dict[str, Any] = {}
    pr: dict[str, Any] = {}
    for c in classes:
        positive = (y == c).astype(int)
        if positive.min(initial=1) == positive.max(initial=0):
            continue  # one class only: no curve
        fpr, tpr, _ = roc_curve(positive, prob[:, c])
        precision, recall, _ = precision_recall_curve(positive, prob[:, c])
        roc[label_names[c]] = dict(zip(("fpr", "tpr"), _thin(fpr, tpr)))
        pr[label_names[c]] = dict(zip(("recall", "precision"), _thin(recall, precision)))
    return {"roc": roc, "pr": pr}


__all__ = ["confused_pairs", "curves", "example_losses", "input_view", "worst_examples"]
