"""Bootstrap intervals: the vectorised batch path against a per-resample scikit-learn loop.

Prints one JSON line: median seconds of each path and their ratio on the same resamples.

    python benchmarks/eval_bootstrap.py            # full: 5000 rows, 10 classes, 1000 resamples
    python benchmarks/eval_bootstrap.py --small    # CI: 500 rows, 100 resamples
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np
from sklearn import metrics as skm

from modelyard.evaluate.scoring import Scores, bootstrap_intervals, point_values, resample_chunks
from modelyard.plugins import load_builtins

NAMES = ["accuracy", "macro_f1", "roc_auc", "log_loss"]


def baseline(scores: Scores, samples: int) -> None:
    for index in resample_chunks(len(scores), samples, 0):
        for rows in index:
            y, p, prob = scores.y_true[rows], scores.y_pred[rows], scores.y_prob[rows]  # type: ignore[index]
            skm.accuracy_score(y, p)
            skm.f1_score(y, p, average="macro", zero_division=0)
            np.mean([skm.roc_auc_score(y == c, prob[:, c]) for c in np.unique(y)])
            skm.log_loss(y, prob, labels=range(prob.shape[1]))


def main() -> None:
    small = "--small" in sys.argv
    n, k, samples, repeats = (500, 4, 100, 3) if small else (5000, 10, 1000, 3)
    load_builtins()
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    prob = rng.dirichlet(np.ones(k) * 0.5, n)
    scores = Scores(y_true=y, y_pred=prob.argmax(1), y_prob=prob)
    values, _ = point_values(NAMES, scores)
    ours, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        bootstrap_intervals(NAMES, scores, samples=samples, confidence=0.95, seed=0, values=values)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        baseline(scores, samples)
        theirs.append(time.perf_counter() - t)
    print(json.dumps({"benchmark": "eval_bootstrap", "rows": n, "classes": k, "resamples": samples,
                      "metrics": NAMES, "batched_s": statistics.median(ours),
                      "sklearn_loop_s": statistics.median(theirs),
                      "speedup": statistics.median(theirs) / statistics.median(ours)}))


if __name__ == "__main__":
    main()
