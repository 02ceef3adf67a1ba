"""Language-modeling and generation metrics: perplexity, token accuracy, BLEU and chrF (sacrebleu).

Language modeling: ``y_true`` are target token ids (N,) with ``-100`` for positions to
ignore (padding), ``y_prob`` the (N, V) next-token probabilities. Generation: ``y_true``
are reference strings, ``y_pred`` the generated strings; BLEU and chrF are sacrebleu's
corpus scores (0-100), with its default tokenisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.plugins.metrics import UndefinedMetric, metric

IGNORE = -100


def _token_nll(y_true: np.ndarray, y_prob: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if y_prob is None:
        raise UndefinedMetric("perplexity needs next-token probabilities")
    y_true = np.asarray(y_true, dtype=np.int64)
    keep = y_true != IGNORE
    prob = np.asarray(y_prob, dtype=np.float64)
    picked = prob[np.arange(len(y_true)), np.where(keep, y_true, 0)]
    return -np.log(np.maximum(picked, np.finfo(np.float64).tiny)), keep


def _perplexity_batch(y_true: np.ndarray, y_pred: Any, y_prob: np.ndarray | None, index: np.ndarray) -> np.ndarray:
    nll, keep = _token_nll(y_true, y_prob)
    counted = keep[index].sum(axis=1)
    total = (nll * keep)[index].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.exp(np.where(counted > 0, total / np.maximum(counted, 1), np.nan))


@metric("perplexity", tasks=("language-modeling",), needs_proba=True, higher_is_better=False,
        batch=_perplexity_batch)
def perplexity(*, y_true: np.ndarray, y_pred: Any = None, y_prob: np.ndarray | None = None) -> float:
    """exp(mean negative log-likelihood per target token), padding (-100) ignored."""
    value = float(_perplexity_batch(y_true, y_pred, y_prob, np.arange(len(y_true))[None, :])[0])
    if np.isnan(value):
        raise UndefinedMetric("no target tokens (every position is padding)")
    return value


def _token_accuracy_batch(y_true: np.ndarray, y_pred: np.ndarray | None, y_prob: np.ndarray | None,
                          index: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_prob).argmax(axis=1) if y_pred is None else np.asarray(y_pred)
    keep = y_true != IGNORE
    hits = ((pred == y_true) & keep)[index].sum(axis=1)
    counted = keep[index].sum(axis=1)
    return np.where(counted > 0, hits / np.maximum(counted, 1), np.nan)


@metric("token_accuracy", tasks=("language-modeling",), batch=_token_accuracy_batch)
def token_accuracy(*, y_true: np.ndarray, y_pred: np.ndarray | None = None, y_prob: np.ndarray | None = None) -> float:
    """Share of target tokens predicted exactly (argmax), padding (-100) ignored."""
    value = float(_token_accuracy_batch(y_true, y_pred, y_prob, np.arange(len(y_true))[None, :])[0])
    if np.isnan(value):
        raise UndefinedMetric("no target tokens (every position is padding)")
    return value


def _texts(y_true: Any, y_pred: Any) -> tuple[list[str], list[str]]:
    refs, hyps = [str(t) for t in y_true], [str(p) for p in y_pred]
    if not refs:
        raise UndefinedMetric("no sentences")
    return refs, hyps


@metric("bleu", tasks=("generation",))
def bleu(*, y_true: Any, y_pred: Any, y_prob: Any = None) -> float:
    """Corpus BLEU (sacrebleu, 0-100) of the generated strings against one reference each."""
    import sacrebleu

    refs, hyps = _texts(y_true, y_pred)
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


@metric("chrf", tasks=("generation",))
def chrf(*, y_true: Any, y_pred: Any, y_prob: Any = None) -> float:
    """Corpus chrF (sacrebleu, 0-100): character n-gram F-score."""
    import sacrebleu

    refs, hyps = _texts(y_true, y_pred)
    return float(sacrebleu.corpus_chrf(hyps, [refs]).score)
