"""Binary decision threshold chosen on the validation split, then applied to the test split."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from modelyard.core.errors import DataError


def choose_threshold(y_valid: np.ndarray, p_valid: np.ndarray, *, objective: str,
                     target: float | None = None) -> dict[str, Any]:
    """The threshold on P(positive) that best meets ``objective`` on validation rows.

    Args:
        y_valid: 0/1 labels of the validation split.
        p_valid: P(class 1) for those rows.
        objective: ``f1``; ``precision_at_recall`` (max precision with recall ≥ target);
            ``recall_at_precision`` (max recall with precision ≥ target); ``youden`` (max TPR − FPR).
        target: the floor of the ``*_at_*`` objectives.

    Returns:
        ``{"threshold", "objective", "target", "valid_value", "valid_precision", "valid_recall"}``.

    Raises:
        DataError: the validation split lacks a class, or no threshold reaches the target.
    """
    y_valid = np.asarray(y_valid).astype(int)
    if len(np.unique(y_valid)) < 2:
        raise DataError("choosing a threshold needs both classes in the validation split",
                        hint="use a larger valid split or drop evaluate.threshold")
    if objective == "youden":
        fpr, tpr, thresholds = roc_curve(y_valid, p_valid)
        best = int(np.argmax(tpr - fpr))
        threshold = float(min(thresholds[best], 1.0))
        value = float(tpr[best] - fpr[best])
    else:
        precision, recall, thresholds = precision_recall_curve(y_valid, p_valid)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        if objective == "f1":
            score = np.divide(2 * precision * recall, precision + recall,
                              out=np.zeros_like(precision), where=precision + recall > 0)
            ok = np.ones_like(score, dtype=bool)
        elif objective == "precision_at_recall":
            score, ok = precision, recall >= float(target)  # type: ignore[arg-type]
        else:
            score, ok = recall, precision >= float(target)  # type: ignore[arg-type]
        if not ok.any():
            raise DataError(f"no threshold reaches {objective.split('_at_')[1]} ≥ {target} on the validation split",
                            hint="lower evaluate.threshold.target")
        best = int(np.flatnonzero(ok)[np.argmax(score[ok])])
        threshold, value = float(thresholds[best]), float(score[best])
    pred = (np.asarray(p_valid) >= threshold).astype(int)
    tp = int(((pred == 1) & (y_valid == 1)).sum())
    return {"threshold": threshold, "objective": objective, "target": target, "valid_value": value,
            "valid_precision": tp / max(int(pred.sum()), 1), "valid_recall": tp / max(int(y_valid.sum()), 1)}


__all__ = ["choose_threshold"]
