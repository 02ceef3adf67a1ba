"""The dataset artifact: ``<split>.parquet`` + ``schema.json`` + ``stats.json`` (+ manifest).

Writing the same rows with the same schema gives byte-identical files, so the same input
and recipe always give the same dataset id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ArtifactError, DataError
from modelyard.core.refs import DatasetRef
from modelyard.data.schema import DatasetSchema
from modelyard.store.project import Store

SPLITS = ("train", "valid", "test")


def write_dataset(folder: Path, schema: DatasetSchema, splits: dict[str, pd.DataFrame],
                  stats: dict[str, Any]) -> None:
    """Write a dataset into a staging ``folder``."""
    for name, frame in splits.items():
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        # No pandas metadata blob: it is not needed to read back and keeps files deterministic.
        table = table.replace_schema_metadata(None)
        pq.write_table(table, folder / f"{name}.parquet", compression="zstd")
    atomic_write_json(folder / "schema.json", schema.to_dict())
    atomic_write_json(folder / "stats.json", stats)


@dataclass
class Dataset:
    """A verified dataset artifact opened for reading."""

    ref: DatasetRef
    path: Path
    schema: DatasetSchema
    stats: dict[str, Any]

    def frame(self, split: str) -> pd.DataFrame:
        """The rows of ``split`` as a DataFrame."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r} (train, valid, test)")
        return pq.read_table(self.path / f"{split}.parquet").to_pandas()

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) of a tabular or image split as numpy arrays.

        Image inputs come back as (N, C, H, W) float32; tabular as (N, F) float32.
        """
        frame = self.frame(split)
        y = frame["label"].to_numpy().copy()  # writable: torch.from_numpy refuses read-only buffers
        if self.schema.modality == "image":
            assert self.schema.image and self.schema.image_shape
            flat = np.stack(frame[self.schema.image].to_numpy()) if len(frame) else np.zeros((0,))
            x = flat.astype(np.float32).reshape(len(frame), *self.schema.image_shape)
        elif self.schema.modality == "tabular":
            x = frame[self.schema.features].to_numpy(dtype=np.float32, copy=True)
        else:
            raise DataError(f"arrays() does not apply to {self.schema.modality} data; use frame()")
        return x, y

    def texts(self, split: str) -> tuple[list[str], np.ndarray]:
        """(texts, labels) of a text split."""
        frame = self.frame(split)
        assert self.schema.text
        return frame[self.schema.text].astype(str).tolist(), frame["label"].to_numpy()


def open_dataset(store: Store, ref: DatasetRef) -> Dataset:
    """Open and verify a dataset artifact.

    Raises:
        ArtifactError: the artifact is not a dataset or fails its hash check.
    """
    path = store.artifacts.path(ref)
    manifest = store.artifacts.manifest(ref)
    if manifest.kind != "dataset":
        raise ArtifactError(f"artifact {ref.short} is a {manifest.kind}, not a dataset")
    schema = DatasetSchema.from_dict(json.loads((path / "schema.json").read_text("utf-8")))
    stats = json.loads((path / "stats.json").read_text("utf-8"))
    return Dataset(ref=DatasetRef(id=ref.id), path=path, schema=schema, stats=stats)
