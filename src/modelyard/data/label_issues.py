"""Likely label errors: out-of-fold probabilities of quick models + confident learning (cleanlab).

The quick models are scikit-learn's: logistic regression and k-nearest neighbours on
standardised numbers (tables, flattened images), averaged; logistic regression on TF-IDF
word and character n-grams for text. Their out-of-fold probabilities feed cleanlab's
``find_label_issues`` (prune by noise rate). A row is also flagged when the models
predict another class and give its label less than ``min_confidence`` — confident
learning alone under-counts when the noisy labels also weaken the models.

On scikit-learn's digits with 5% of labels flipped at random this finds ≥ 0.8 of the
flips at ≥ 0.6 precision (``tests/unit/data/test_label_issues.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelyard.core.errors import ConfigError, DataError

MIN_CONFIDENCE = 0.1


@dataclass
class LabelIssues:
    """Flagged rows (indices into the inputs), the suggested label and the given label's probability."""

    rows: np.ndarray           # (K,) int64, most suspicious first
    suggested: np.ndarray      # (K,) int64 class codes
    given_probability: np.ndarray  # (K,) float64
    pred_probs: np.ndarray     # (N, C) out-of-fold probabilities


def out_of_fold_probabilities(inputs: np.ndarray | list[str], labels: np.ndarray, *, num_classes: int, folds: int,
                              seed: int) -> np.ndarray:
    """(N, C) probabilities of each row from models that never saw it (stratified k-fold).

    Raises:
        DataError: a class has fewer than 2 rows (no fold can hold it out and learn it).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels, minlength=num_classes)
    present = counts[counts > 0]
    if present.min() < 2:
        raise DataError("label issues need at least 2 rows per class", where="data.label_issues")
    k = int(min(folds, present.min()))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    if isinstance(inputs, list):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectors = make_union(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=200_000),
                             TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                                             max_features=200_000))
        models = [make_pipeline(vectors, LogisticRegression(max_iter=1000, C=4.0))]
        data: np.ndarray | list[str] = inputs
    else:
        data = np.nan_to_num(np.asarray(inputs, dtype=np.float64).reshape(len(labels), -1))
        models = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.1)),
                  make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(10, len(labels) - 1),
                                                                       weights="distance"))]
    probs = np.zeros((len(labels), num_classes))
    for train, held in cv.split(np.zeros(len(labels)), labels):
        for model in models:
            fitted = model.fit(_take(data, train), labels[train])
            part = fitted.predict_proba(_take(data, held))
            # A fold's model knows only the classes it saw: place its columns by class code.
            probs[np.ix_(held, fitted.classes_)] += part / len(models)
    return probs


def _take(data: np.ndarray | list[str], rows: np.ndarray) -> np.ndarray | list[str]:
    return [data[i] for i in rows] if isinstance(data, list) else data[rows]


def find_label_issues(inputs: np.ndarray | list[str], labels: np.ndarray, *, num_classes: int, folds: int = 5,
                      seed: int = 0, min_confidence: float = MIN_CONFIDENCE) -> LabelIssues:
    """Rows whose label is likely wrong, most suspicious first, with a suggested label.

    Args:
        inputs: (N, …) numbers (tables, images) or N texts.
        labels: (N,) class codes.
        num_classes: number of classes.
        folds: folds for the out-of-fold probabilities.
        seed: fold shuffling seed.
        min_confidence: also flag rows whose label gets less probability than this while
            another class is predicted.
    """
    try:
        from cleanlab.filter import find_label_issues as cleanlab_issues
    except ImportError:  # pragma: no cover - cleanlab is in the data extra
        raise ConfigError("label_issues needs cleanlab: pip install 'modelyard[data]'",
                          where="data.label_issues.action") from None
    labels = labels.astype(np.int64)
    probs = out_of_fold_probabilities(inputs, labels, num_classes=num_classes, folds=folds, seed=seed)
    # cleanlab needs every class column to hold some probability; absent classes get a tiny floor.
    safe = np.clip(probs, 1e-8, None)
    safe /= safe.sum(axis=1, keepdims=True)
    flagged = np.asarray(cleanlab_issues(labels, safe, filter_by="prune_by_noise_rate"), dtype=bool)
    given = safe[np.arange(len(labels)), labels]
    predicted = safe.argmax(axis=1)
    flagged |= (predicted != labels) & (given < min_confidence)
    rows = np.flatnonzero(flagged)
    rows = rows[np.argsort(given[rows], kind="stable")]  # least confident in the given label first
    return LabelIssues(rows=rows.astype(np.int64), suggested=predicted[rows].astype(np.int64),
                       given_probability=given[rows], pred_probs=probs)
