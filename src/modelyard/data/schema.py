"""Column roles, inferred types and row validation.

:func:`resolve_roles` decides, from the recipe and the first chunk, which column is the
label, text, image, group, id, weight or time, and which features are numeric or
categorical (declared, or inferred: a column is numeric when most of its values parse as
numbers). :func:`coerce_chunk` then gives every chunk those types and lists the rows that
fail — a value of the wrong type, a missing or invalid label, a negative weight — with
the policy of ``data.validation.invalid``: fail naming the row, drop it, or fill.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from modelyard.config.data import ColumnsConfig, DataConfig
from modelyard.core.errors import DataError
from modelyard.data.sources import Source

LABEL = "label"  # the label's column in every split
ROW = "_row"  # source row number, kept while preparing (not written to the dataset)
FOLD = "_fold"  # k-fold assignment of train / valid rows (data.split.folds)
RESERVED = (LABEL, ROW, FOLD)
TEXT_TASKS = ("language-modeling",)


@dataclass
class DatasetSchema:
    """What a prepared dataset holds; saved as ``schema.json`` inside the artifact."""

    task: str
    modality: str                          # tabular | image | text
    label: str = LABEL                     # column of the label in every split ("" when unlabelled)
    label_names: list[str] = field(default_factory=list)  # classification: code -> name
    features: list[str] = field(default_factory=list)     # tabular inputs, in column order
    categorical: list[str] = field(default_factory=list)  # the features that are categorical
    text: str | None = None
    image: str | None = None               # flat float column
    image_shape: list[int] | None = None   # (C, H, W)
    group: str | None = None
    id: str | None = None
    weight: str | None = None
    time: str | None = None
    fold: str | None = None                # FOLD when the recipe asked for k folds
    folds: int | None = None
    source: str = ""
    # How to refit the fitted steps on any train split (folds, refits): the recipe's choices.
    fitting: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DatasetSchema:
        """Inverse of :meth:`to_dict` (unknown keys from newer versions are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.label_names)

    @property
    def numeric(self) -> list[str]:
        """The numeric features."""
        taken = set(self.categorical)
        return [f for f in self.features if f not in taken]

    @property
    def labelled(self) -> bool:
        """False for an unlabelled corpus (language modelling)."""
        return bool(self.label)


@dataclass
class Roles:
    """The resolved role of every column the dataset keeps."""

    label: str | None
    features: list[str] = field(default_factory=list)
    categorical: set[str] = field(default_factory=set)
    text: str | None = None
    image: str | None = None
    group: str | None = None
    id: str | None = None
    weight: str | None = None
    time: str | None = None
    inferred: dict[str, str] = field(default_factory=dict)  # column -> how its role/type was decided

    @property
    def modality(self) -> str:
        """image, text or tabular."""
        return "image" if self.image else "text" if self.text else "tabular"

    @property
    def string_columns(self) -> list[str]:
        """Columns holding free strings (text, categorical features, group, id)."""
        cols = [self.text, *[f for f in self.features if f in self.categorical], self.group, self.id]
        return [c for c in cols if c is not None]


@dataclass
class Failure:
    """One row that failed validation."""

    row: int
    column: str
    value: Any
    reason: str


def resolve_roles(cfg: DataConfig, task: str, source: Source, first: pd.DataFrame) -> Roles:
    """Decide every column's role and type from the recipe, the source and its first chunk.

    Raises:
        DataError: a named column does not exist, no label column, nothing to learn from,
            or a column holds nested values.
    """
    columns, info, where = cfg.columns, source.info, source.info.where
    present = [str(c) for c in first.columns]
    for col in present:
        if col in RESERVED and col != info.label_hint and col != columns.label:
            raise DataError(f"column name {col!r} is reserved by modelyard", where=where,
                            hint=f"rename it or list it in data.columns.ignore (reserved: {', '.join(RESERVED)})")
    unlabelled = task in TEXT_TASKS
    label = None if unlabelled else (columns.label or info.label_hint)
    if label is None and not unlabelled:
        raise DataError("no label column: set data.columns.label", where=where)
    named = {"label": label, "text": columns.text or info.text_hint, "group": columns.group, "id": columns.id,
             "weight": columns.weight, "time": columns.time}
    for role, named_col in named.items():
        if named_col is not None:
            _require(present, named_col, where, role=role)
    for col in [*(columns.features or []), *columns.numeric, *columns.categorical, *columns.ignore]:
        _require(present, col, where)
    roles = Roles(label=label, text=named["text"], group=columns.group, id=columns.id or info.path_column,
                  weight=columns.weight, time=columns.time, image=info.image_column)
    if roles.image is not None:
        return roles
    taken = {c for c in (label, roles.text, roles.group, roles.id, roles.weight, roles.time) if c}
    candidates = columns.features or [c for c in present if c not in taken and c not in columns.ignore]
    if roles.text is None and columns.features is None and not columns.numeric and not columns.categorical:
        roles.text = _free_text_column(first, candidates)
        if roles.text is not None:
            roles.inferred[roles.text] = "text (inferred: long, varied strings)"
    if roles.text is not None:
        return roles  # text data: the model reads the text; other columns are not inputs
    for col in candidates:
        if col in taken:
            raise DataError(f"column {col!r} cannot be a feature: it is already the {_role_of(col, named)} column",
                            where=where)
        values = first[col]
        if values.dtype == object and values.head(1000).map(lambda v: isinstance(v, list | dict | np.ndarray)).any():
            raise DataError(f"column {col!r} holds nested values (lists or objects)", where=where,
                            hint="list it in data.columns.ignore")
        if col in columns.categorical:
            roles.categorical.add(col)
            roles.inferred[col] = "categorical (declared)"
        elif col in columns.numeric:
            roles.inferred[col] = "numeric (declared)"
        elif _looks_numeric(values, cfg.validation.numeric_share):
            roles.inferred[col] = "numeric (inferred)"
        else:
            roles.categorical.add(col)
            roles.inferred[col] = "categorical (inferred)"
        roles.features.append(col)
    if not roles.features:
        raise DataError("no feature columns left besides the label", where=where)
    return roles


def _role_of(col: str, named: dict[str, str | None]) -> str:
    return next(role for role, c in named.items() if c == col)


def _require(present: list[str], name: str, where: str, role: str = "") -> None:
    if name not in present:
        what = f"{role} column" if role else "column"
        known = ", ".join(present[:20]) + (" …" if len(present) > 20 else "")
        raise DataError(f"{what} {name!r} does not exist (columns: {known})", where=where)


def _looks_numeric(values: pd.Series, share: float) -> bool:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return True
    present = values.dropna()
    if len(present) == 0:
        return True
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return bool(parsed.notna().mean() >= share)


def _free_text_column(first: pd.DataFrame, candidates: list[str]) -> str | None:
    """The single column that reads like prose (long, mostly distinct, with spaces), if exactly one does."""
    found = []
    for col in candidates:
        values = first[col].dropna()
        if len(values) < 5 or pd.api.types.is_numeric_dtype(values):
            continue
        text = values.astype(str)
        if (text.str.len().median() >= 20 and text.str.contains(" ").mean() >= 0.8
                and text.nunique() >= 0.5 * len(text)):
            found.append(col)
    return found[0] if len(found) == 1 else None


def label_text(value: Any) -> str:
    """A label as text: 3, 3.0 and "3" are the same class."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value).strip()


def coerce_chunk(frame: pd.DataFrame, rows: np.ndarray, roles: Roles, columns: ColumnsConfig, *,
                 task: str) -> tuple[pd.DataFrame, list[Failure]]:
    """Give a chunk the resolved types; return it (the kept columns + ``_row``) and its failing rows.

    Failing rows are only listed here; :func:`apply_policy` decides what happens to them.
    """
    out: dict[str, Any] = {ROW: rows}
    failures: list[Failure] = []
    for col in roles.features:
        values = frame[col]
        if col in roles.categorical:
            out[col] = _as_strings(values)
            continue
        numeric, bad = _as_numbers(values)
        out[col] = numeric
        failures += [Failure(int(rows[i]), col, values.iloc[i], "not a number") for i in bad]
    for role in ("text", "group", "id"):
        col = getattr(roles, role)
        if col is not None:
            out[col] = _as_strings(frame[col])
    if roles.image is not None:
        out[roles.image] = frame[roles.image].to_numpy()
    if roles.weight is not None:
        weights, bad = _as_numbers(frame[roles.weight])
        failures += [Failure(int(rows[i]), roles.weight, frame[roles.weight].iloc[i], "not a number") for i in bad]
        not_numbers = set(bad)
        negative = np.flatnonzero((weights < 0) | np.isnan(weights))
        failures += [Failure(int(rows[i]), roles.weight, weights[i], "weight must be a number ≥ 0")
                     for i in negative if i not in not_numbers]
        out[roles.weight] = weights
    if roles.time is not None:
        times, bad = _as_times(frame[roles.time])
        failures += [Failure(int(rows[i]), roles.time, frame[roles.time].iloc[i], "not a time or number")
                     for i in bad]
        out[roles.time] = times
    if roles.label is not None:
        raw = frame[roles.label]
        missing = raw.isna().to_numpy()
        failures += [Failure(int(rows[i]), roles.label, None, "missing label") for i in np.flatnonzero(missing)]
        if task == "regression":
            values, bad = _as_numbers(raw)
            failures += [Failure(int(rows[i]), roles.label, raw.iloc[i], "label is not a number") for i in bad]
            out[LABEL] = values
        else:
            labels = _as_strings(raw)
            if columns.label_values is not None:
                allowed = {label_text(v) for v in columns.label_values}
                invalid = [i for i, v in enumerate(labels) if v is not None and v not in allowed]
                failures += [Failure(int(rows[i]), roles.label, labels[i],
                                     f"invalid label (allowed: {', '.join(sorted(allowed))})") for i in invalid]
            out[LABEL] = labels
    # Object columns stay object: pandas would otherwise turn None into NaN in a string dtype.
    return pd.DataFrame({k: pd.Series(v, dtype=object) if isinstance(v, np.ndarray) and v.dtype == object else v
                         for k, v in out.items()}), failures


def apply_policy(frame: pd.DataFrame, failures: list[Failure], *, policy: str, roles: Roles,
                 source: Source) -> tuple[pd.DataFrame, int]:
    """Act on failing rows: raise for ``fail``, drop them, or make their bad value missing (``fill``).

    Returns:
        The frame and the number of rows dropped.

    Raises:
        DataError: ``policy == "fail"``, naming the first failing row, its column and value.
    """
    if not failures:
        return frame, 0
    if policy == "fail":
        first = min(failures, key=lambda f: f.row)
        count = len({f.row for f in failures})
        more = f"; {count - 1} more row(s) fail in this chunk" if count > 1 else ""
        raise DataError(f"column {first.column!r}: {first.reason}: {_show(first.value)}{more}",
                        where=source.locate(first.row),
                        hint="fix the data, or set data.validation.invalid: drop | fill")
    position = {int(r): i for i, r in enumerate(frame[ROW].to_numpy())}
    drop: set[int] = set()
    for failure in failures:
        i = position[failure.row]
        if policy == "drop" or failure.column in (roles.label, roles.weight, roles.time):
            drop.add(i)  # a bad label, weight or time cannot be filled: the row goes
        else:
            frame.at[i, failure.column] = np.nan
    if drop:
        frame = frame.drop(index=sorted(drop)).reset_index(drop=True)
    return frame, len(drop)


def _show(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "…"


def _as_strings(values: pd.Series) -> np.ndarray:
    """Strings with None for missing (numbers written as text, 3.0 as '3')."""
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        return values.to_numpy(dtype=object, na_value=None)
    # Convert each distinct value once: columns repeat a few values many times.
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    texts = np.array([v if isinstance(v, str) else label_text(v) for v in uniques] + [None], dtype=object)
    return texts[codes]  # code -1 (missing) picks the trailing None


def _as_numbers(values: pd.Series) -> tuple[np.ndarray, list[int]]:
    """float64 values and the positions of present values that are not numbers."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64").to_numpy(), []
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), []
    fast = _arrow_numbers(values)
    if fast is not None:
        return fast, []
    present = values.notna().to_numpy()
    text = values.astype(object).where(values.notna(), None)
    stripped = pd.Series([v.strip() if isinstance(v, str) else v for v in text.to_numpy()], dtype=object)
    parsed = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(present & np.isnan(parsed) & ~_nan_literal(stripped))
    return parsed, [int(i) for i in bad]


def _arrow_numbers(values: pd.Series) -> np.ndarray | None:
    """float64 of a text column when every present value parses (Arrow's C++ cast); else None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = pa.array(values, from_pandas=True)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            return None
        parsed = pc.cast(pc.utf8_trim_whitespace(array), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None  # some value is not a number: the slow path names it
    return parsed.to_numpy(zero_copy_only=False)


def _nan_literal(values: pd.Series) -> np.ndarray:
    return values.map(lambda v: isinstance(v, str) and v.lower() in ("nan", "-nan", "")).to_numpy(dtype=bool)


def _as_times(values: pd.Series) -> tuple[np.ndarray, list[int]]:
    """Seconds (numbers as given, dates and times since the epoch) and positions that are neither."""
    numbers, bad = _as_numbers(values)
    if not bad:
        return numbers, []
    parsed = pd.to_datetime(values.where(values.notna(), None), errors="coerce", utc=True, format="mixed")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    merged = np.where(np.isnan(numbers), seconds, numbers)
    present = values.notna().to_numpy()
    return merged, [int(i) for i in np.flatnonzero(present & np.isnan(merged))]
