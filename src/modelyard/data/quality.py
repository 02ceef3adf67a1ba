"""The data-quality record: what every step did (rows in/out, counts, examples) plus column profiles.

Steps and profiles are accumulated chunk by chunk, so they cost memory per column, not
per row. :meth:`QualityLog.to_dict` is saved as ``quality.json`` in the dataset artifact,
rendered by ``yard data report`` and by the HTML report's data-quality section. It holds
no timings or absolute times: the same input and recipe give the same file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

QUALITY_VERSION = 1
# Exact distinct counts up to this many values per column; above it the profile says "≥ cap".
DISTINCT_CAP = 100_000
TEXT_LENGTH_BINS = (0, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
TOP_VALUES = 10
# Value counts stop admitting new values past this many (ID-like columns would grow without bound).
TOP_TRACKED = 50_000


@dataclass
class StepLog:
    """One step: rows in and out, named counts, and a few examples."""

    name: str
    max_examples: int
    rows_in: int = 0
    rows_out: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def rows(self, rows_in: int, rows_out: int) -> None:
        """Add a chunk's rows in and out."""
        self.rows_in += rows_in
        self.rows_out += rows_out

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the count ``key``."""
        if n:
            self.counts[key] += int(n)

    def example(self, **fields: Any) -> None:
        """Keep an example (only the first ``max_examples``)."""
        if len(self.examples) < self.max_examples:
            self.examples.append({k: _jsonable(v) for k, v in fields.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"step": self.name, "rows_in": self.rows_in, "rows_out": self.rows_out,
                               "counts": dict(sorted(self.counts.items())), "examples": self.examples}
        out.update(self.details)
        return out


class ColumnProfile:
    """Streaming profile of one column: missing share, distinct values, range, top values, text lengths."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.count = 0
        self.missing = 0
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._capped = False
        self.minimum = np.inf
        self.maximum = -np.inf
        self.total = 0.0
        self.total_sq = 0.0
        self.integral = True
        self.top: Counter[str] = Counter()
        self.lengths = np.zeros(len(TEXT_LENGTH_BINS), dtype=np.int64)
        self.length_total = 0

    def update(self, values: np.ndarray) -> None:
        """Add a chunk of values (float64 for numeric, objects with None for strings)."""
        self.count += len(values)
        if self.kind == "numeric":
            present = values[~np.isnan(values)]
            self.missing += len(values) - len(present)
            if len(present):
                self.minimum = min(self.minimum, float(present.min()))
                self.maximum = max(self.maximum, float(present.max()))
                self.total += float(present.sum())
                self.total_sq += float(np.square(present).sum())
                self.integral = self.integral and bool(np.all(np.mod(present, 1) == 0))
            self._distinct(pd.util.hash_array(present))
            return
        present_mask = ~pd.isna(values).astype(bool)
        present = values[present_mask]
        self.missing += len(values) - len(present)
        if not len(present):
            return
        self._distinct(pd.util.hash_array(present))
        if self.kind == "text":
            lengths = np.fromiter((len(v) for v in present), dtype=np.int64, count=len(present))
            self.lengths += np.bincount(np.searchsorted(TEXT_LENGTH_BINS, lengths, side="right") - 1,
                                        minlength=len(TEXT_LENGTH_BINS))
            self.length_total += int(lengths.sum())
        elif len(self.top) < TOP_TRACKED:
            self.top.update(pd.Series(present, dtype=object).value_counts(sort=False).to_dict())

    def _distinct(self, hashes: np.ndarray) -> None:
        if self._capped or not len(hashes):
            return
        self._hashes = pd.unique(np.concatenate([self._hashes, pd.unique(hashes)]))
        if len(self._hashes) > DISTINCT_CAP:
            self._capped, self._hashes = True, np.zeros(0, dtype=np.uint64)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the constant and ID-like flags."""
        present = self.count - self.missing
        distinct = None if self._capped else len(self._hashes)
        out: dict[str, Any] = {
            "column": self.name, "kind": self.kind, "count": self.count, "missing": self.missing,
            "missing_pct": round(100.0 * self.missing / self.count, 3) if self.count else 0.0,
            "distinct": distinct if distinct is not None else f">{DISTINCT_CAP}",
            "constant": distinct is not None and distinct <= 1 and present > 0,
            "all_missing": self.count > 0 and present == 0,
            # ID-like: every present value distinct, integer or string, and enough rows to tell.
            "id_like": bool(present >= 20 and (distinct is None or distinct == present)
                            and (self.kind != "numeric" or self.integral)),
        }
        if self.kind == "numeric" and present:
            mean = self.total / present
            out.update(min=self.minimum, max=self.maximum, mean=round(mean, 6),
                       std=round(float(np.sqrt(max(self.total_sq / present - mean * mean, 0.0))), 6))
        if self.kind == "categorical":
            out["top"] = [[str(k), int(v)] for k, v in sorted(self.top.items(), key=lambda kv: (-kv[1], kv[0]))
                          [:TOP_VALUES]]
        if self.kind == "text":
            out["length_mean"] = round(self.length_total / present, 2) if present else 0.0
            out["length_histogram"] = {"bins": list(TEXT_LENGTH_BINS), "counts": self.lengths.tolist()}
        return out


class QualityLog:
    """Every step's record plus free-form sections (profiles, class balance, leakage …)."""

    def __init__(self, max_examples: int = 5) -> None:
        self.max_examples = max_examples
        self._steps: dict[str, StepLog] = {}
        self.sections: dict[str, Any] = {}
        self.profiles: dict[str, ColumnProfile] = {}

    def step(self, name: str) -> StepLog:
        """The log of step ``name`` (created on first use; steps keep their first-use order)."""
        if name not in self._steps:
            self._steps[name] = StepLog(name=name, max_examples=self.max_examples)
        return self._steps[name]

    def has_step(self, name: str) -> bool:
        """Whether step ``name`` ran."""
        return name in self._steps

    def profile(self, name: str, kind: str) -> ColumnProfile:
        """The streaming profile of column ``name``."""
        if name not in self.profiles:
            self.profiles[name] = ColumnProfile(name, kind)
        return self.profiles[name]

    def to_dict(self) -> dict[str, Any]:
        """The whole record (``quality.json``)."""
        return {"version": QUALITY_VERSION, "steps": [s.to_dict() for s in self._steps.values()],
                "columns": [p.to_dict() for p in self.profiles.values()], **_jsonable(self.sections)}

    def summary(self) -> dict[str, Any]:
        """Flat figures for the run's summary and metrics (``rows/…``, ``dropped/<step>``, counts)."""
        out: dict[str, Any] = {}
        for step in self._steps.values():
            dropped = step.rows_in - step.rows_out
            if dropped:
                out[f"dropped/{step.name}"] = dropped
            for key, value in step.counts.items():
                out[f"{step.name}/{key}"] = value
        return out


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays → Python numbers and lists; NaN → None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
