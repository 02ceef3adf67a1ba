"""The promotion gate: does a candidate regress against production on the same test examples?

A paired bootstrap (Efron & Tibshirani, ch. 16): both models are scored on the same
examples, so the per-example differences carry the comparison and the noise of which
examples happen to be in the test split is shared. Resampling examples with
replacement gives the distribution of the mean difference; its percentile interval is
the confidence interval.

The verdict is ``regressed`` when the candidate is worse than production by more than
``tolerance`` in point estimate, or significantly so (the whole interval below
``-tolerance``). Torch-free on purpose: the store decides, the CLI runs the models.

    verdict = gate(candidate_correct, production_correct, tolerance=0.0)
    verdict.passed, verdict.delta, verdict.ci
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modelyard.core.errors import DataError


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus baseline, per example, summarised."""

    n: int
    candidate_mean: float
    baseline_mean: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    p_worse: float  # share of bootstrap resamples where the candidate is worse

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


@dataclass(frozen=True)
class GateVerdict:
    """Whether promotion may proceed, and why."""

    passed: bool
    reason: str
    comparison: PairedComparison
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready verdict (goes into the audit entry of the promotion)."""
        return {"passed": self.passed, "reason": self.reason, "tolerance": self.tolerance,
                **self.comparison.as_dict()}


def paired_bootstrap(candidate: Any, baseline: Any, *, resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> PairedComparison:
    """Bootstrap the mean of ``candidate - baseline`` over paired examples (higher is better).

    Args:
        candidate: per-example scores of the candidate (1/0 correctness, or any score).
        baseline: the same examples scored for the baseline, same order.
        resamples: bootstrap resamples.
        confidence: the interval's coverage.
        seed: makes the interval reproducible.

    Raises:
        DataError: lengths differ, empty input, or non-finite scores.
    """
    cand = np.asarray(candidate, dtype=np.float64).ravel()
    base = np.asarray(baseline, dtype=np.float64).ravel()
    if cand.shape != base.shape:
        raise DataError(f"paired comparison needs the same examples: {cand.size} vs {base.size} scores")
    if cand.size == 0:
        raise DataError("paired comparison on zero examples")
    if not (np.isfinite(cand).all() and np.isfinite(base).all()):
        raise DataError("paired comparison got NaN or infinite scores")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    diff = cand - base
    rng = np.random.default_rng(seed)
    # (resamples, n) indices in blocks, so memory stays bounded for large test sets.
    means = np.empty(resamples)
    block = max(1, 4_000_000 // diff.size)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        idx = rng.integers(0, diff.size, size=(stop - start, diff.size))
        means[start:stop] = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return PairedComparison(n=int(diff.size), candidate_mean=float(cand.mean()), baseline_mean=float(base.mean()),
                            delta=float(diff.mean()), ci_low=float(low), ci_high=float(high), confidence=confidence,
                            resamples=resamples, p_worse=float((means < 0).mean()))


def gate(candidate: Any, baseline: Any, *, tolerance: float = 0.0, resamples: int = 2000,
         confidence: float = 0.95, seed: int = 0) -> GateVerdict:
    """The promotion decision for per-example scores (higher is better) on the same examples.

    Args:
        tolerance: how much worse (in the score's units, e.g. 0.01 = one accuracy point)
            the candidate may be in point estimate.
    """
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    comparison = paired_bootstrap(candidate, baseline, resamples=resamples, confidence=confidence, seed=seed)
    if comparison.delta < -tolerance:
        reason = (f"candidate is worse by {-comparison.delta:.4f} (tolerance {tolerance:.4f}); "
                  f"{comparison.confidence:.0%} CI [{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]")
        return GateVerdict(False, reason, comparison, tolerance)
    if comparison.ci_high < -tolerance:
        reason = (f"candidate is significantly worse: {comparison.confidence:.0%} CI of the difference "
                  f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}] lies below -tolerance")
        return GateVerdict(False, reason, comparison, tolerance)
    reason = (f"no regression: difference {comparison.delta:+.4f}, {comparison.confidence:.0%} CI "
              f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}] over {comparison.n} examples")
    return GateVerdict(True, reason, comparison, tolerance)


__all__ = ["GateVerdict", "PairedComparison", "gate", "paired_bootstrap"]
