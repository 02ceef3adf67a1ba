"""Row-local cleaning, applied to every chunk before anything is fitted.

Unicode normalisation (NFKC by default) and trimming of text and string values, empty and
whitespace-only texts, and missing feature values under the ``drop`` / ``fail`` policies.
Cleaning that depends on statistics (mean / median / mode fills, outlier bounds) is fitted
on the train split only, in :mod:`modelyard.data.preprocess`.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd

from modelyard.config.data import CleanConfig
from modelyard.core.errors import DataError
from modelyard.data.quality import StepLog
from modelyard.data.schema import ROW, Roles
from modelyard.data.sources import Source


def normalize_text(value: str, form: str, strip: bool) -> str:
    """Unicode-normalise (``NFKC``, ``NFC`` or ``none``) and optionally trim one string."""
    if form != "none":
        value = unicodedata.normalize(form, value)  # type: ignore[arg-type]
    return value.strip() if strip else value


def _normalize_many(values: np.ndarray, cfg: CleanConfig) -> np.ndarray:
    """:func:`normalize_text` over distinct values; ASCII values only need trimming (NFKC leaves them alone)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values, type=pa.large_string())
    out = pc.utf8_trim_whitespace(array) if cfg.strip else array
    result = np.asarray(out.to_numpy(zero_copy_only=False), dtype=object)
    if cfg.unicode != "none":
        for i in np.flatnonzero(~pc.string_is_ascii(array).to_numpy(zero_copy_only=False)):
            result[i] = normalize_text(values[i], cfg.unicode, cfg.strip)
    return result


def clean_chunk(frame: pd.DataFrame, roles: Roles, cfg: CleanConfig, *, log: StepLog, source: Source) -> pd.DataFrame:
    """Normalise strings, drop empty texts and (policy ``drop``) rows with missing features.

    Raises:
        DataError: ``clean.missing: fail`` and a feature value is missing (naming row and column).
    """
    rows_in = len(frame)
    for col in roles.string_columns:
        values = frame[col].to_numpy()
        # Normalise each distinct value once: categorical columns repeat a few values millions of times.
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        if not len(uniques):
            continue
        cleaned_uniques = _normalize_many(np.asarray(uniques, dtype=object), cfg)
        changed_unique = cleaned_uniques != np.asarray(uniques, dtype=object)
        cleaned = np.where(codes >= 0, cleaned_uniques[np.maximum(codes, 0)], None)
        changed_rows = np.flatnonzero((codes >= 0) & changed_unique[np.maximum(codes, 0)])
        if len(changed_rows) and col == roles.text:
            i = int(changed_rows[0])
            log.example(row=source.locate(int(frame[ROW].iat[i])), column=col, before=values[i][:120],
                        after=cleaned[i][:120], reason="unicode/whitespace")
        frame[col] = pd.Series(cleaned, index=frame.index, dtype=object)  # keep None as None (no str dtype)
        log.count(f"normalized/{col}", len(changed_rows))
    keep = np.ones(len(frame), dtype=bool)
    if roles.text is not None and cfg.drop_empty_text:
        texts = frame[roles.text].to_numpy()
        empty = np.array([not isinstance(t, str) or not t.strip() for t in texts], dtype=bool)
        for i in np.flatnonzero(empty)[:2]:
            log.example(row=source.locate(int(frame[ROW].iat[i])), column=roles.text, value=texts[i],
                        reason="empty text")
        log.count("empty_text", int(empty.sum()))
        keep &= ~empty
    if roles.features:
        missing = _missing_mask(frame, roles)
        if missing.any():
            rows_missing = missing.any(axis=1)
            if cfg.missing == "fail":
                i = int(np.flatnonzero(rows_missing)[0])
                col = roles.features[int(np.flatnonzero(missing[i])[0])]
                raise DataError(f"column {col!r} has a missing value ({int(missing.sum())} in this chunk)",
                                where=source.locate(int(frame[ROW].iat[i])),
                                hint="set data.clean.missing: drop | mean | median | mode | constant")
            if cfg.missing == "drop":
                dropped = rows_missing & keep
                for i in np.flatnonzero(dropped)[:2]:
                    cols = [roles.features[j] for j in np.flatnonzero(missing[i])]
                    log.example(row=source.locate(int(frame[ROW].iat[i])), columns=cols, reason="missing value")
                log.count("missing_rows", int(dropped.sum()))
                keep &= ~rows_missing
            else:
                log.count("missing_values_to_fill", int(missing.sum()))
    if not keep.all():
        frame = frame.loc[keep].reset_index(drop=True)
    log.rows(rows_in, len(frame))
    return frame


def _missing_mask(frame: pd.DataFrame, roles: Roles) -> np.ndarray:
    """(rows, features) True where a feature value is missing."""
    parts = []
    for col in roles.features:
        values = frame[col].to_numpy()
        if col in roles.categorical:
            parts.append(pd.isna(values).astype(bool))
        else:
            parts.append(np.isnan(values.astype(np.float64)))
    return np.stack(parts, axis=1)
