"""Class imbalance: the distribution, class weights, and resampling of a train split.

Random over- and under-sampling pick row indices, so they work for any modality (texts,
images, tables); SMOTE and ADASYN (imbalanced-learn) synthesise numeric rows. Multi-class
throughout: every class is brought to the largest (over-sampling) or smallest
(under-sampling) class count. Only train splits are ever resampled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.core.errors import ConfigError, DataError

NUMERIC_ONLY = ("smote", "adasyn")


def class_distribution(labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Counts and shares per class and the imbalance ratio (largest / smallest present class)."""
    counts = np.bincount(labels.astype(np.int64), minlength=len(names)) if len(labels) else np.zeros(len(names))
    present = counts[counts > 0]
    return {
        "counts": {name: int(c) for name, c in zip(names, counts)},
        "shares": {name: round(float(c) / max(1, len(labels)), 6) for name, c in zip(names, counts)},
        "imbalance_ratio": round(float(present.max() / present.min()), 6) if len(present) else None,
        "missing_classes": [name for name, c in zip(names, counts) if c == 0],
    }


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    """``n / (k · count_c)`` per class (scikit-learn's "balanced"); 0 for a class absent from ``labels``."""
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return [round(float(w), 8) for w in weights]


def resampled_counts(counts: list[int], method: str) -> list[int]:
    """The class counts after ``method`` (SMOTE and ADASYN target the largest class, like oversampling)."""
    present = [c for c in counts if c > 0]
    if method in ("oversample", *NUMERIC_ONLY):
        return [max(present) if c else 0 for c in counts]
    if method == "undersample":
        return [min(present) if c else 0 for c in counts]
    return list(counts)


def resample_indices(labels: np.ndarray, method: str, *, seed: int) -> np.ndarray:
    """Row indices after random ``oversample`` or ``undersample`` (sorted within each class's draw).

    Over-sampling keeps every row and adds draws with replacement; under-sampling draws
    without replacement. The result is in original row order for the kept rows, followed
    by the added copies.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels.astype(np.int64))
    present = counts[counts > 0]
    keep: list[np.ndarray] = []
    extra: list[np.ndarray] = []
    for cls in np.flatnonzero(counts):
        rows = np.flatnonzero(labels == cls)
        if method == "oversample":
            keep.append(rows)
            extra.append(rng.choice(rows, size=int(present.max()) - len(rows), replace=True))
        elif method == "undersample":
            keep.append(rng.choice(rows, size=int(present.min()), replace=False))
        else:
            raise ConfigError(f"resample_indices does not do {method!r}")
    kept = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    added = np.concatenate(extra) if extra else np.zeros(0, dtype=np.int64)
    return np.concatenate([kept, added]).astype(np.int64)


def synthesize(x: np.ndarray, y: np.ndarray, method: str, *, seed: int, k_neighbors: int) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """SMOTE / ADASYN over numeric rows ``x`` (N, F): the original rows followed by synthetic ones.

    Raises:
        DataError: a class has a single row (nothing to interpolate with).
    """
    try:
        from imblearn.over_sampling import ADASYN, SMOTE
    except ImportError:  # pragma: no cover - imbalanced-learn is in the data extra
        raise ConfigError(f"balance.method {method!r} needs imbalanced-learn: pip install 'modelyard[data]'",
                          where="data.balance.method") from None
    counts = np.bincount(y.astype(np.int64))
    smallest = int(counts[counts > 0].min())
    if smallest < 2:
        raise DataError(f"{method} needs at least 2 train rows per class; a class has {smallest}",
                        where="data.balance.method", hint="use oversample, or add data")
    if len(counts[counts > 0]) < 2:
        return x, y
    k = min(k_neighbors, smallest - 1)
    sampler: Any = (SMOTE(k_neighbors=k, random_state=seed) if method == "smote"
                    else ADASYN(n_neighbors=k, random_state=seed))
    try:
        x_new, y_new = sampler.fit_resample(x, y)
    except (ValueError, RuntimeError) as exc:
        # ADASYN refuses data where no minority row has majority neighbours ("not any neigbours …").
        raise DataError(f"{method} cannot resample this train split: {exc}", where="data.balance.method",
                        hint="use smote or oversample") from None
    return np.asarray(x_new, dtype=x.dtype), np.asarray(y_new, dtype=y.dtype)
