"""Stage 1, prepare: raw source → DatasetRef.

Reads the recipe's ``data.source``, resolves and validates column roles, makes a seeded
(stratified) train / valid / test split, and writes a Parquet dataset artifact with its
schema and stats.

    yard data prepare recipes/quickstart.yaml
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.config.recipe import Recipe
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import SPLITS, Dataset, open_dataset, write_dataset
from modelyard.data.schema import DatasetSchema, infer_schema
from modelyard.data.sources import read_source
from modelyard.data.split import split_indices
from modelyard.store.context import RunContext


def run(recipe: Recipe, *, ctx: RunContext) -> DatasetRef:
    """Prepare the dataset described by the recipe's ``data:`` section and publish it to the store.

    Args:
        recipe: the validated recipe (its ``data``, ``task`` and ``seed`` are used).
        ctx: the run context (store, run id, metrics).

    Returns:
        The reference of the (content-addressed) dataset artifact.
    """
    cfg, task = recipe.data, recipe.task
    raw = read_source(cfg.source)
    schema, frame = infer_schema(raw, cfg.columns, task=task)
    labels = frame["label"].to_numpy()
    stratify = cfg.split.stratify and task == "classification"
    index = split_indices(labels, cfg.split, seed=recipe.seed, stratify=stratify)
    splits = {name: frame.iloc[index[name]] for name in SPLITS}
    stats = _stats(schema, splits, rows_in=len(raw.frame))
    with ctx.store.artifacts.staging() as folder:
        write_dataset(folder, schema, splits, stats)
        ref = ctx.store.artifacts.publish(folder, kind="dataset", run_id=ctx.run_id,
                                          meta={"source": schema.source, "modality": schema.modality})
    ctx.store.runs.set_summary(ctx.run_id, {"dataset": ref.id, **{f"rows/{k}": v for k, v in stats["rows"].items()}})
    return DatasetRef(id=ref.id)


def _stats(schema: DatasetSchema, splits: dict[str, Any], *, rows_in: int) -> dict[str, Any]:
    stats: dict[str, Any] = {"rows_in": rows_in, "rows": {name: len(f) for name, f in splits.items()}}
    if schema.task == "classification":
        stats["class_counts"] = {
            name: {schema.label_names[i]: int(c)
                   for i, c in enumerate(np.bincount(f["label"].to_numpy(), minlength=schema.num_classes))}
            for name, f in splits.items()
        }
    return stats


__all__ = ["Dataset", "DatasetSchema", "open_dataset", "run"]
