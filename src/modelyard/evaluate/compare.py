"""Two models on the same test rows: a paired bootstrap of the difference of every metric.

Both models are scored on the *same* resamples of the test rows (Efron & Tibshirani,
ch. 16), so the luck of which rows are in the split is shared and cancels in the
difference. ``p_better`` is the share of resamples in which the candidate is better
(in the metric's own direction); the registry's promotion gate can read it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.core.errors import DataError
from modelyard.evaluate.scoring import Scores, metric_on_resamples, point_values, resample_chunks
from modelyard.plugins.metrics import info


def paired_comparison(names: list[str], candidate: Scores, baseline: Scores, *, samples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per metric: candidate, baseline, delta (candidate − baseline), its interval and ``p_better``.

    Raises:
        DataError: the two score sets are not on the same rows.
    """
    if len(candidate) != len(baseline) or not np.array_equal(np.asarray(candidate.y_true, dtype=object),
                                                             np.asarray(baseline.y_true, dtype=object)):
        raise DataError(f"paired comparison needs both models scored on the same rows "
                        f"({len(candidate)} vs {len(baseline)} rows, or different labels)")
    if len(candidate) == 0:
        raise DataError("paired comparison on an empty split")
    cand_values, cand_undefined = point_values(names, candidate)
    base_values, _ = point_values(names, baseline)
    out: dict[str, dict[str, Any]] = {}
    defined = [n for n in names if cand_values[n] is not None and base_values[n] is not None]
    diffs: dict[str, list[np.ndarray]] = {n: [] for n in defined}
    for index in resample_chunks(len(candidate), max(samples, 2), seed):
        for name in defined:
            diffs[name].append(metric_on_resamples(name, candidate, index) - metric_on_resamples(name, baseline, index))
    alpha = (1 - confidence) / 2
    for name in names:
        if name not in diffs:
            out[name] = {"candidate": cand_values[name], "baseline": base_values[name], "delta": None,
                         "undefined": cand_undefined.get(name, "undefined for the baseline")}
            continue
        d = np.concatenate(diffs[name])
        d = d[np.isfinite(d)]
        sign = 1.0 if info(name).higher_is_better else -1.0
        low, high = np.quantile(d, [alpha, 1 - alpha]) if len(d) else (np.nan, np.nan)
        out[name] = {"candidate": cand_values[name], "baseline": base_values[name],
                     "delta": float(cand_values[name] - base_values[name]),  # type: ignore[operator]
                     "low": float(low), "high": float(high), "confidence": confidence,
                     "p_better": float(np.mean(sign * d > 0)) if len(d) else None,
                     "higher_is_better": info(name).higher_is_better}
    return out


__all__ = ["paired_comparison"]
