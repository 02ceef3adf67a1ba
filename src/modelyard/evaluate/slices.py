"""Metrics per slice of the test rows, with the gap to the overall value, and group fairness gaps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelyard.config.evaluate import FairnessConfig, SliceConfig
from modelyard.core.errors import ConfigError, DataError
from modelyard.evaluate.scoring import Scores, point_values

MAX_SLICE_VALUES = 50  # a column with more distinct values is bucketed (numeric) or refused (text)


def slice_keys(cfg: SliceConfig, frame: pd.DataFrame, *, modality: str, text_column: str | None,
               images: np.ndarray | None) -> tuple[np.ndarray, str]:
    """One slice label per test row, and a description of how the rows were cut.

    Raises:
        ConfigError: the column does not exist, or the derived quantity does not fit the data.
    """
    if cfg.column is not None:
        if cfg.column not in frame.columns:
            known = ", ".join(c for c in frame.columns if not c.startswith("_")) or "none"
            raise ConfigError(f"slice column {cfg.column!r} is not in the dataset", where="evaluate.slices",
                              hint=f"columns: {known}")
        values = frame[cfg.column]
    elif cfg.derived == "text_length":
        if modality != "text" or text_column is None:
            raise ConfigError(f"derived slice 'text_length' needs text data; this dataset is {modality}",
                              where="evaluate.slices")
        values = frame[text_column].astype(str).str.len().astype(float)
    else:
        if modality != "image" or images is None:
            raise ConfigError(f"derived slice 'brightness' needs image data; this dataset is {modality}",
                              where="evaluate.slices")
        values = pd.Series(images.reshape(len(images), -1).mean(axis=1).astype(float))
    numeric = pd.api.types.is_numeric_dtype(values)
    if numeric and (cfg.buckets is not None or values.nunique() > MAX_SLICE_VALUES or cfg.derived):
        quartiles = np.quantile(values.dropna(), [0, 0.25, 0.5, 0.75, 1]) if values.notna().any() else []
        edges = cfg.buckets if cfg.buckets is not None else sorted({float(q) for q in quartiles})
        if len(edges) < 2:
            edges = [float(values.min()), float(values.max()) + 1e-9]
        cut = pd.cut(values, bins=edges, include_lowest=True)
        labels = cut.astype(str).where(cut.notna(), "outside buckets").to_numpy()
        return labels, f"{cfg.name} in buckets {[round(float(e), 4) for e in edges]}"
    if values.nunique() > MAX_SLICE_VALUES:
        raise ConfigError(f"slice column {cfg.name!r} has {values.nunique()} distinct values (max "
                          f"{MAX_SLICE_VALUES})", where="evaluate.slices", hint="slice on a coarser column")
    return values.astype(str).where(values.notna(), "(missing)").to_numpy(), f"{cfg.name} values"


def slice_table(keys: np.ndarray, scores: Scores, names: list[str],
                overall: dict[str, float | None]) -> list[dict[str, Any]]:
    """Per slice value: rows, each metric, and the gap (slice − overall); largest first by rows."""
    rows = []
    for value in sorted(set(keys.tolist()), key=lambda v: (-int((keys == v).sum()), v)):
        mask = keys == value
        part = Scores(y_true=scores.y_true[mask], y_pred=scores.y_pred[mask],
                      y_prob=None if scores.y_prob is None else scores.y_prob[mask])
        values, undefined = point_values(names, part)
        gaps = {n: (None if values[n] is None or overall.get(n) is None else values[n] - overall[n])  # type: ignore[operator]
                for n in names}
        rows.append({"value": value, "rows": int(mask.sum()), "metrics": values, "gap": gaps,
                     "undefined": undefined})
    return rows


def fairness_gaps(cfg: FairnessConfig, frame: pd.DataFrame, scores: Scores,
                  label_names: list[str]) -> dict[str, Any]:
    """Demographic parity and equal opportunity differences (max − min over groups) for a positive label.

    Raises:
        ConfigError: the group column or positive label does not exist, or no positive label is given
            for a task with more than two classes.
    """
    if cfg.group not in frame.columns:
        known = ", ".join(c for c in frame.columns if not c.startswith("_")) or "none"
        raise ConfigError(f"fairness group column {cfg.group!r} is not in the dataset",
                          where="evaluate.fairness.group", hint=f"columns: {known}")
    if cfg.positive is None:
        if len(label_names) != 2:
            raise ConfigError(f"fairness needs evaluate.fairness.positive for {len(label_names)} classes",
                              where="evaluate.fairness.positive", hint=f"one of {label_names}")
        positive = 1
    elif cfg.positive in label_names:
        positive = label_names.index(cfg.positive)
    else:
        raise ConfigError(f"positive label {cfg.positive!r} is not a label of this dataset",
                          where="evaluate.fairness.positive", hint=f"labels: {label_names}")
    groups = frame[cfg.group].astype(str).to_numpy()
    if len(groups) != len(scores):
        raise DataError("group column and predictions differ in length")
    per_group = []
    for value in sorted(set(groups.tolist())):
        mask = groups == value
        pred_pos = scores.y_pred[mask] == positive
        true_pos = scores.y_true[mask] == positive
        tpr = float((pred_pos & true_pos).sum() / true_pos.sum()) if true_pos.any() else None
        per_group.append({"group": value, "rows": int(mask.sum()), "positive_rate": float(pred_pos.mean()),
                          "true_positive_rate": tpr})
    rates = [g["positive_rate"] for g in per_group]
    tprs = [g["true_positive_rate"] for g in per_group if g["true_positive_rate"] is not None]
    return {"group": cfg.group, "positive": label_names[positive], "groups": per_group,
            "demographic_parity_difference": max(rates) - min(rates),
            "equal_opportunity_difference": (max(tprs) - min(tprs)) if len(tprs) >= 2 else None}


__all__ = ["fairness_gaps", "slice_keys", "slice_table"]
