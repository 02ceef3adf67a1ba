"""Permutation importance (Breiman 2001; scikit-learn's definition): how much a metric drops
when one feature's column is shuffled, breaking its link to the label. Model-agnostic: it
only calls a predict function on arrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def permutation_importance(score: Callable[[np.ndarray], float], x: np.ndarray, *, repeats: int, seed: int,
                           higher_is_better: bool = True,
                           on_feature: Callable[[], None] | None = None) -> dict[str, Any]:
    """Importance of each column of ``x``: mean and std over ``repeats`` shuffles of the drop in ``score``.

    Args:
        score: the metric of the model's predictions on given inputs (labels fixed inside).
        x: (N, F) inputs.
        repeats: shuffles per feature.
        seed: seed of the shuffles.
        higher_is_better: the metric's direction (importance is always "worse when shuffled").
        on_feature: called after each feature (progress).

    Returns:
        ``{"baseline": float, "mean": [F], "std": [F], "raw": [F][repeats]}``.
    """
    rng = np.random.default_rng(seed)
    baseline = float(score(x))
    sign = 1.0 if higher_is_better else -1.0
    raw = np.zeros((x.shape[1], repeats))
    for j in range(x.shape[1]):
        shuffled = x.copy()
        for r in range(repeats):
            shuffled[:, j] = x[rng.permutation(len(x)), j]
            raw[j, r] = sign * (baseline - float(score(shuffled)))
        if on_feature is not None:
            on_feature()
    return {"baseline": baseline, "mean": raw.mean(axis=1).tolist(), "std": raw.std(axis=1).tolist(),
            "raw": raw.tolist()}


__all__ = ["permutation_importance"]
