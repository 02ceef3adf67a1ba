"""Apply the tabular preprocessing a model was trained with (``preprocessor.json``) to raw features.

Data preparation fits fills, outlier bounds, category codes and scaling on the train split
and saves them as ``preprocessor.json``; training feeds the model the *transformed*
features. A client sends raw feature values, so the server applies the same transform:
missing values (``null``) are filled, numbers are clipped and scaled, categories become
their codes (unseen ones the extra code ``len(categories)``).

The file is read from the model artifact when it carries one, else from the dataset the
model was trained from (its ``trained_from`` parent in the store's lineage), so models
trained before the model artifact carried its preprocessor still serve correct answers.

Why a second implementation of ``data/preprocess.py``'s ``Preprocessor.transform``:
``serve`` may not import ``data`` (ARCHITECTURE §2). This module reads the same file
format (version 1) and refuses any other version; ``tests/serve/test_features.py``
checks it against ``Preprocessor.transform`` on the same rows. When the transform moves
to ``runtime`` (where every consumer may import it), this module becomes a call to it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.core.errors import ArtifactError, NotFoundError
from modelyard.core.refs import ModelRef
from modelyard.serve.errors import bad_input, shorten
from modelyard.store.project import Store

PREPROCESSOR_FILE = "preprocessor.json"
SUPPORTED_VERSION = 1
_KEYS = {"features", "normalize", "outlier_action", "categories_", "fill_", "lower_", "upper_", "center_",
         "scale_", "fitted_rows", "version"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class FeatureTransform:
    """The fitted transform from raw feature values to the model's (F,) float32 input row."""

    def __init__(self, raw: dict[str, Any], *, where: str) -> None:
        if raw.get("version") != SUPPORTED_VERSION or not set(raw) <= _KEYS:
            raise ArtifactError(f"preprocessor.json version {raw.get('version')!r} with keys "
                                f"{sorted(set(raw) - _KEYS)} is not one this server can apply", where=where)
        self.features: list[str] = list(raw["features"])
        self.outlier_action = str(raw.get("outlier_action", "none"))
        self.categories: dict[str, dict[str, int]] = {
            col: {str(c): i for i, c in enumerate(values)} for col, values in raw.get("categories_", {}).items()}
        self.fill: dict[str, Any] = dict(raw.get("fill_", {}))
        self.lower: dict[str, float] = {k: float(v) for k, v in raw.get("lower_", {}).items()}
        self.upper: dict[str, float] = {k: float(v) for k, v in raw.get("upper_", {}).items()}
        self.center: dict[str, float] = {k: float(v) for k, v in raw.get("center_", {}).items()}
        self.scale: dict[str, float] = {k: float(v) for k, v in raw.get("scale_", {}).items()}

    def is_categorical(self, feature: str) -> bool:
        """True for a feature encoded as a category code."""
        return feature in self.categories

    def row(self, values: dict[str, Any], where: str) -> np.ndarray:
        """Transform one input (feature → raw value, ``None`` for missing) to the model's row.

        Raises:
            ServeError: 400 naming the feature whose value has the wrong type.
        """
        out = np.empty(len(self.features), dtype=np.float32)
        for j, col in enumerate(self.features):
            value = values.get(col)
            if col in self.categories:
                out[j] = self._code(col, value, f"{where}.{col}")
            else:
                out[j] = self._number(col, value, f"{where}.{col}")
        return out

    def matrix(self, x: np.ndarray) -> np.ndarray:
        """Transform (N, F) raw numeric values (NaN: missing) from a tensor; category columns hold numbers."""
        rows = [{col: (None if math.isnan(v) else v) for col, v in zip(self.features, row.tolist())} for row in x]
        return np.stack([self.row(r, f"inputs[0].data[{i}]") for i, r in enumerate(rows)]) if rows else \
            np.zeros((0, len(self.features)), np.float32)

    def _code(self, col: str, value: Any, where: str) -> float:
        if value is None:
            value = self.fill.get(col)
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad_input(f"a category is a string or number, got {shorten(value)}", where)
        elif isinstance(value, float) and value.is_integer():
            value = str(int(value))  # 3.0 and 3 are the same category, as when the data was prepared
        codes = self.categories[col]
        return float(codes.get(str(value), len(codes)))

    def _number(self, col: str, value: Any, where: str) -> float:
        if value is None:
            number = float(self.fill.get(col, 0.0))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_input(f"expected a number (or null for missing), got {shorten(value)}", where)
        else:
            number = float(value)
            if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
                raise bad_input(f"expected a finite number within float32 range, got {number}", where)
        if self.outlier_action == "clip" and col in self.lower:
            number = min(max(number, self.lower[col]), self.upper[col])
        return (number - self.center.get(col, 0.0)) / self.scale.get(col, 1.0)


def find_preprocessor(store: Store, ref: ModelRef, path: Path) -> FeatureTransform | None:
    """The model's ``preprocessor.json``: in its artifact, else in the dataset it was trained from.

    Raises:
        ArtifactError: the file is unreadable or of an unknown version, or the parent dataset
            fails its hash check.
    """
    candidates = [path / PREPROCESSOR_FILE]
    if not candidates[0].is_file():
        for parent, relation in store.artifacts.parents(ref.id):
            if relation == "trained_from":
                try:
                    candidates.append(store.artifacts.path(parent) / PREPROCESSOR_FILE)
                except NotFoundError:
                    continue  # the dataset was garbage-collected: the model then has to carry its own
    for file in candidates:
        if file.is_file():
            try:
                raw = json.loads(file.read_text("utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ArtifactError(f"unreadable preprocessor: {exc}", where=str(file)) from exc
            return FeatureTransform(raw, where=str(file))
    return None


__all__ = ["PREPROCESSOR_FILE", "FeatureTransform", "find_preprocessor"]
