"""Fitted tabular preprocessing: missing-value fills, outlier bounds, category codes and scaling.

Everything here is fitted on a train split only (the prepared dataset's, or a fold's) and
saved as ``preprocessor.json`` beside the Parquet splits, so training, evaluation and
serving apply the same transform to raw rows:

    pre = fit_preprocessor(lambda: [train_frame], schema, rows=len(train_frame))
    x = pre.transform(frame)            # (N, F) float32
    Preprocessor.from_dict(json.load(...)).transform(records)

Fitting streams over the split twice (quantiles and fills, then moments after filling and
clipping), so it works on splits larger than memory; quantiles then come from an evenly
strided sample of at most ``SAMPLE_CAP`` values per column.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelyard.core.errors import DataError
from modelyard.data.schema import DatasetSchema

PREPROCESSOR_FILE = "preprocessor.json"
PREPROCESSOR_VERSION = 1
SAMPLE_CAP = 1_000_000
_DEFAULT_THRESHOLD = {"iqr": 1.5, "zscore": 3.0}

Batches = Callable[[], Iterable[pd.DataFrame]]


@dataclass
class Preprocessor:
    """A fitted transform from raw feature columns to a (N, F) float32 matrix.

    Attributes:
        features: input columns, in output order.
        categories_: categorical column -> its categories (code = position; unseen → len).
        fill_: column -> value that replaces a missing one.
        lower_, upper_: numeric column -> outlier bounds (absent: no bound).
        outlier_action: ``none``, ``clip`` (every split and serving) or ``drop`` (train rows only).
        center_, scale_: numeric column -> x' = (x - center) / scale.
    """

    features: list[str] = field(default_factory=list)
    normalize: str = "none"
    outlier_action: str = "none"
    categories_: dict[str, list[str]] = field(default_factory=dict)
    fill_: dict[str, Any] = field(default_factory=dict)
    lower_: dict[str, float] = field(default_factory=dict)
    upper_: dict[str, float] = field(default_factory=dict)
    center_: dict[str, float] = field(default_factory=dict)
    scale_: dict[str, float] = field(default_factory=dict)
    fitted_rows: int = 0
    version: int = PREPROCESSOR_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Preprocessor:
        """Inverse of :meth:`to_dict`."""
        return cls(**raw)

    def _numeric(self, frame: pd.DataFrame, col: str, *, clip: bool) -> np.ndarray:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        values = np.where(np.isnan(values), float(self.fill_.get(col, 0.0)), values)
        if clip and self.outlier_action == "clip" and col in self.lower_:
            values = np.clip(values, self.lower_[col], self.upper_[col])
        return values

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, F) float32: fill, clip, encode categories, scale.

        Raises:
            DataError: a feature column is absent from ``frame``.
        """
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise DataError(f"input lacks feature column {missing[0]!r} (expected {', '.join(self.features)})")
        out = np.empty((len(frame), len(self.features)), dtype=np.float32)
        for j, col in enumerate(self.features):
            if col in self.categories_:
                out[:, j] = self._codes(frame[col], col)
                continue
            values = self._numeric(frame, col, clip=True)
            out[:, j] = (values - self.center_.get(col, 0.0)) / self.scale_.get(col, 1.0)
        return out

    def _codes(self, values: pd.Series, col: str) -> np.ndarray:
        categories = self.categories_[col]
        fill = self.fill_.get(col)
        text = values.astype(object).where(values.notna(), fill)
        codes = pd.Index(categories, dtype=object).get_indexer(text.map(str) if text.dtype == object else text)
        return np.where(codes < 0, len(categories), codes).astype(np.float32)  # unseen → one code after the known

    def inliers(self, frame: pd.DataFrame) -> np.ndarray:
        """(N,) bool: rows inside every outlier bound (all True unless ``outlier_action == 'drop'``)."""
        keep = np.ones(len(frame), dtype=bool)
        if self.outlier_action != "drop":
            return keep
        for col in self.lower_:
            values = self._numeric(frame, col, clip=False)
            keep &= (values >= self.lower_[col]) & (values <= self.upper_[col])
        return keep


def _absent(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def fit_preprocessor(batches: Batches, schema: DatasetSchema, *, rows: int) -> Preprocessor:
    """Fit on the train split streamed by ``batches()`` (called twice) with the choices in ``schema.fitting``.

    Args:
        batches: returns an iterable of train-split frames (raw feature columns).
        schema: the dataset schema (features, categorical columns, fitting choices).
        rows: the number of train rows (sets the quantile sample stride).
    """
    fitting = schema.fitting or {}
    missing = fitting.get("missing", "drop")
    outliers = fitting.get("outliers") or {"method": "none"}
    method = outliers.get("method", "none")
    threshold = outliers.get("threshold") or _DEFAULT_THRESHOLD.get(method, 0.0)
    pre = Preprocessor(features=list(schema.features), normalize=fitting.get("normalize", "none"),
                       outlier_action=outliers.get("action", "clip") if method != "none" else "none",
                       fitted_rows=rows)
    if not schema.features or schema.modality != "tabular":
        return pre
    numeric, categorical = schema.numeric, schema.categorical
    stride = max(1, -(-rows // SAMPLE_CAP))
    samples: dict[str, list[np.ndarray]] = {c: [] for c in numeric}
    sums = dict.fromkeys(numeric, 0.0)
    counts = dict.fromkeys(numeric, 0)
    value_counts: dict[str, Counter[Any]] = {c: Counter() for c in [*numeric, *categorical]}
    for frame in batches():
        for col in numeric:
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            present = values[~np.isnan(values)]
            samples[col].append(present[::stride].copy())  # a copy: the strided view would keep all of present
            sums[col] += float(present.sum())
            counts[col] += len(present)
            if missing == "mode":
                value_counts[col].update(present.tolist())
        for col in categorical:
            seen = frame[col].dropna().astype(str).value_counts(sort=False)
            value_counts[col].update(dict(zip(seen.index.tolist(), seen.tolist())))
    for col in categorical:
        ordered = sorted(value_counts[col].items(), key=lambda kv: (-kv[1], kv[0]))
        pre.categories_[col] = [k for k, _ in ordered]
        pre.fill_[col] = str(fitting.get("fill_value")) if missing == "constant" else (
            ordered[0][0] if ordered else "")
    for col in numeric:
        sample = np.sort(np.concatenate(samples[col])) if samples[col] else np.zeros(0)
        if not len(sample):
            raise DataError(f"feature column {col!r} has no values in the train split",
                            hint="list it in data.columns.ignore")
        mean = sums[col] / counts[col]
        if missing == "mean":
            pre.fill_[col] = mean
        elif missing == "mode":
            pre.fill_[col] = float(min(value_counts[col].items(), key=lambda kv: (-kv[1], kv[0]))[0])
        elif missing == "constant":
            pre.fill_[col] = _as_float(fitting.get("fill_value", 0.0), col)
        else:  # median, and the serving fallback when missing rows were dropped
            pre.fill_[col] = float(np.median(sample))
        if method == "iqr":
            q1, q3 = np.quantile(sample, [0.25, 0.75])
            pre.lower_[col], pre.upper_[col] = float(q1 - threshold * (q3 - q1)), float(q3 + threshold * (q3 - q1))
        elif method == "zscore":
            std = float(sample.std())
            pre.lower_[col], pre.upper_[col] = float(mean - threshold * std), float(mean + threshold * std)
    if pre.normalize != "none":
        _fit_scale(pre, batches, numeric)
    return pre


def _fit_scale(pre: Preprocessor, batches: Batches, numeric: list[str]) -> None:
    """Second pass: moments / range of the filled and clipped values of the rows the model will see."""
    n = dict.fromkeys(numeric, 0)
    total = dict.fromkeys(numeric, 0.0)
    total_sq = dict.fromkeys(numeric, 0.0)
    low = dict.fromkeys(numeric, np.inf)
    high = dict.fromkeys(numeric, -np.inf)
    for frame in batches():
        keep = pre.inliers(frame)
        for col in numeric:
            values = pre._numeric(frame, col, clip=True)[keep]
            if not len(values):
                continue
            n[col] += len(values)
            low[col] = min(low[col], float(values.min()))
            high[col] = max(high[col], float(values.max()))
            # Sums around a shift near the centre (the fill value) keep the variance exact enough.
            shifted = values - float(pre.fill_.get(col, 0.0))
            total[col] += float(shifted.sum())
            total_sq[col] += float(np.square(shifted).sum())
    for col in numeric:
        if n[col] == 0:
            continue
        if pre.normalize == "standardize":
            shifted_mean = total[col] / n[col]
            std = float(np.sqrt(max(total_sq[col] / n[col] - shifted_mean * shifted_mean, 0.0)))
            mean = shifted_mean + float(pre.fill_.get(col, 0.0))
            pre.center_[col], pre.scale_[col] = mean, std if std > 1e-12 else 1.0
        else:  # minmax
            span = high[col] - low[col]
            pre.center_[col], pre.scale_[col] = low[col], span if span > 1e-12 else 1.0


def _as_float(value: Any, col: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"clean.fill_value {value!r} is not a number but {col!r} is numeric",
                        where="data.clean.fill_value") from None
