"""Column roles and validation: decide what is label, features, text, image, group."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelyard.config.data import ColumnsConfig
from modelyard.core.errors import DataError
from modelyard.data.sources import RawTable


@dataclass
class DatasetSchema:
    """What a prepared dataset holds; saved as ``schema.json`` inside the artifact."""

    task: str
    modality: str                          # tabular | image | text
    label: str = "label"                   # column of the label in every split
    label_names: list[str] = field(default_factory=list)  # classification: code -> name
    features: list[str] = field(default_factory=list)     # tabular inputs
    text: str | None = None
    image: str | None = None               # flat float column
    image_shape: list[int] | None = None   # (C, H, W)
    group: str | None = None
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DatasetSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(**raw)

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.label_names)


def infer_schema(raw: RawTable, columns: ColumnsConfig, *, task: str) -> tuple[DatasetSchema, pd.DataFrame]:
    """Resolve column roles, validate them, and return the schema plus the normalised frame.

    The returned frame has the label under ``label`` (int class codes for classification,
    float for regression), and only the columns the schema names.

    Raises:
        DataError: a named column does not exist, the label has one class or missing
            values, a feature column is not numeric or is all missing.
    """
    frame = raw.frame
    label = columns.label or raw.label_hint
    if label is None:
        raise DataError("no label column: set data.columns.label", where=raw.where)
    _require(frame, label, raw.where, role="label")
    for name in (columns.text, columns.group):
        if name is not None:
            _require(frame, name, raw.where)

    schema = DatasetSchema(task=task, modality="tabular", source=raw.where, group=columns.group)
    if raw.image_column is not None:
        schema.modality, schema.image = "image", raw.image_column
        schema.image_shape = list(raw.image_shape or ())
    elif columns.text is not None:
        schema.modality, schema.text = "text", columns.text
    else:
        taken = {label, columns.group}
        candidates = columns.features or [c for c in frame.columns if c not in taken]
        for name in candidates:
            _require(frame, name, raw.where, role="feature")
        schema.features = [str(c) for c in candidates]
        _check_numeric(frame, schema.features, raw.where)
        if not schema.features:
            raise DataError("no feature columns left besides the label", where=raw.where)

    y = frame[label]
    if y.isna().any():
        row = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise DataError(f"label column {label!r} has {int(y.isna().sum())} missing values (first at row {row + 2})",
                        where=raw.where)
    keep = [c for c in (schema.text, schema.image, schema.group, *schema.features) if c is not None]
    out = frame[keep].copy()
    if task == "classification":
        names = sorted({str(v) for v in y})
        if len(names) < 2:
            raise DataError(f"label column {label!r} has a single class ({names[0]!r}); classification needs two",
                            where=raw.where)
        schema.label_names = _natural_order(y, names)
        codes = {name: i for i, name in enumerate(schema.label_names)}
        out["label"] = np.array([codes[str(v)] for v in y], dtype=np.int64)
    else:
        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].iloc[0]
            raise DataError(f"regression label {label!r} has a non-numeric value {bad!r}", where=raw.where)
        out["label"] = numeric.astype(np.float32)
    return schema, out.reset_index(drop=True)


def _natural_order(y: pd.Series, names: list[str]) -> list[str]:
    """Numeric labels sort as numbers (2 before 10); others alphabetically."""
    try:
        return [str(v) for v in sorted({v.item() if hasattr(v, "item") else v for v in y})]
    except TypeError:
        return names


def _require(frame: pd.DataFrame, name: str, where: str, role: str = "") -> None:
    if name not in frame.columns:
        label = f"{role} column" if role else "column"
        known = ", ".join(map(str, list(frame.columns)[:20]))
        raise DataError(f"{label} {name!r} does not exist (columns: {known})", where=where)


def _check_numeric(frame: pd.DataFrame, names: list[str], where: str) -> None:
    for name in names:
        col = frame[name]
        if col.isna().all():
            raise DataError(f"feature column {name!r} is entirely missing", where=where)
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            numeric = pd.to_numeric(col, errors="coerce")
            bad = col[numeric.isna() & col.notna()]
            if len(bad):
                row = int(bad.index[0])
                raise DataError(f"feature column {name!r} is not numeric: {bad.iloc[0]!r} at row {row + 2}",
                                where=where)
            frame[name] = numeric
        if frame[name].isna().any():
            n = int(frame[name].isna().sum())
            raise DataError(f"feature column {name!r} has {n} missing values", where=where,
                            hint="drop or fill them before preparing")
