"""The dataset artifact: the format's writer and reader.

    <split>.parquet     train / valid / test rows: raw feature values, text, flat images, ``label``
    schema.json         column roles, label names, image shape, and the fitting choices
    preprocessor.json   the transform fitted on the train split (fills, outlier bounds, scaling)
    stats.json          rows per split, class balance, class weights (when asked for)
    quality.json        what every preparation step did (rows in/out, counts, examples)
    recipe.json         the recipe's data section, seed and task that produced the dataset
    manifest.json       sha256 of every file (written by the store)

The Parquet files hold the rows *before* anything fitted is applied, and the fitted steps
run when a split is loaded (:meth:`Dataset.arrays`): fills, clipping and scaling on every
split; outlier dropping, class balancing and offline augmentation on the train split only.
So a fold or refit dataset built from these rows refits them on its own train split
(:func:`write_dataset`, :meth:`Dataset.folds`) and never sees held-out rows.

Writing the same rows with the same schema gives byte-identical files, so the same input
and recipe always give the same dataset id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ArtifactError, ConfigError, DataError
from modelyard.core.refs import DatasetRef
from modelyard.data.preprocess import PREPROCESSOR_FILE, Preprocessor, fit_preprocessor
from modelyard.data.schema import FOLD, LABEL, DatasetSchema
from modelyard.data.split import SPLITS, fold_assignments
from modelyard.store.project import Store

QUALITY_FILE = "quality.json"
ROW_GROUP = 65_536  # rows per Parquet row group of a streamed split
IMAGE_ROW_GROUP = 1_024
RECIPE_FILE = "recipe.json"


def arrow_schema(schema: DatasetSchema) -> pa.Schema:
    """The Parquet columns of a dataset, in a fixed order with fixed types."""
    fields: list[pa.Field] = []
    for col in schema.features:
        fields.append(pa.field(col, pa.string() if col in schema.categorical else pa.float64()))
    if schema.text:
        fields.append(pa.field(schema.text, pa.string()))
    if schema.image:
        fields.append(pa.field(schema.image, pa.list_(pa.float32())))
    for col in dict.fromkeys(c for c in (schema.group, schema.id) if c):
        fields.append(pa.field(col, pa.string()))
    for numeric in (schema.weight, schema.time):
        if numeric:
            fields.append(pa.field(numeric, pa.float64()))
    if schema.labelled:
        fields.append(pa.field(LABEL, pa.int64() if schema.task == "classification" else pa.float32()))
    if schema.fold:
        fields.append(pa.field(FOLD, pa.int8()))
    return pa.schema(fields)


def to_table(frame: pd.DataFrame, columns: pa.Schema) -> pa.Table:
    """A frame as an Arrow table with exactly ``columns`` (no pandas metadata: deterministic bytes)."""
    arrays = []
    for fld in columns:
        values = frame[fld.name].to_numpy() if fld.name in frame.columns else None
        if values is None:
            raise DataError(f"split frame lacks column {fld.name!r}")
        if pa.types.is_list(fld.type):
            arrays.append(pa.array([np.asarray(v, dtype=np.float32) for v in values], type=fld.type))
        elif pa.types.is_string(fld.type):
            arrays.append(_strings(values, fld))
        else:
            arrays.append(pa.array(values, type=fld.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=columns)


def _strings(values: np.ndarray, fld: pa.Field) -> pa.Array:
    """A string column; None and NaN are missing, anything else not a string is written as text."""
    try:
        return pa.array(values, type=fld.type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values],
                        type=fld.type)


class SplitWriter:
    """Streams rows into ``<split>.parquet`` files (one writer per split, zstd).

    Rows are buffered into row groups of a fixed size, so the bytes written
    do not depend on how the source happened to be chunked.
    """

    def __init__(self, folder: Path, schema: DatasetSchema) -> None:
        self.folder = folder
        self.columns = arrow_schema(schema)
        self.rows = dict.fromkeys(SPLITS, 0)
        # Image rows are large (C·H·W floats): smaller groups keep the buffer small.
        self.row_group = IMAGE_ROW_GROUP if schema.image else ROW_GROUP
        self._buffers: dict[str, list[pa.Table]] = {name: [] for name in SPLITS}
        self._buffered = dict.fromkeys(SPLITS, 0)
        self._writers = {name: pq.ParquetWriter(folder / f"{name}.parquet", self.columns, compression="zstd")
                         for name in SPLITS}

    def write(self, split: str, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame`` to ``split``."""
        if not len(frame):
            return
        self._buffers[split].append(to_table(frame, self.columns))
        self._buffered[split] += len(frame)
        self.rows[split] += len(frame)
        if self._buffered[split] >= self.row_group:
            self._flush(split, final=False)

    def _flush(self, split: str, *, final: bool) -> None:
        table = pa.concat_tables(self._buffers[split]) if self._buffers[split] else None
        self._buffers[split], self._buffered[split] = [], 0
        if table is None:
            return
        size = self.row_group
        full = (len(table) // size) * size if not final else len(table)
        for start in range(0, full, size):
            self._writers[split].write_table(table.slice(start, min(size, full - start)))
        if full < len(table):
            rest = table.slice(full)
            self._buffers[split], self._buffered[split] = [rest], len(rest)

    def close(self) -> None:
        """Write what is buffered and finish every file."""
        for name, writer in self._writers.items():
            self._flush(name, final=True)
            writer.close()


def write_metadata(folder: Path, schema: DatasetSchema, stats: dict[str, Any], *, preprocessor: Preprocessor,
                   quality: dict[str, Any] | None = None, recipe: dict[str, Any] | None = None) -> None:
    """Write the JSON files beside the splits."""
    atomic_write_json(folder / "schema.json", schema.to_dict())
    atomic_write_json(folder / "stats.json", stats)
    atomic_write_json(folder / PREPROCESSOR_FILE, preprocessor.to_dict())
    if quality is not None:
        atomic_write_json(folder / QUALITY_FILE, quality)
    if recipe is not None:
        atomic_write_json(folder / RECIPE_FILE, recipe)


def write_dataset(folder: Path, schema: DatasetSchema, splits: dict[str, pd.DataFrame], stats: dict[str, Any], *,
                  preprocessor: Preprocessor | None = None, quality: dict[str, Any] | None = None,
                  recipe: dict[str, Any] | None = None) -> None:
    """Write an in-memory dataset into a staging ``folder``.

    Without ``preprocessor``, one is fitted on ``splits["train"]`` with the schema's fitting
    choices — a fold or refit dataset gets a transform fitted on its own train rows.
    """
    columns = arrow_schema(schema)
    for name in SPLITS:
        frame = splits.get(name)
        frame = frame if frame is not None else pd.DataFrame({c: [] for c in columns.names})
        pq.write_table(to_table(frame.reset_index(drop=True), columns), folder / f"{name}.parquet",
                       compression="zstd")
    if preprocessor is None:
        train = splits.get("train")
        preprocessor = fit_preprocessor(lambda: [train] if train is not None else [], schema,
                                        rows=0 if train is None else len(train))
    if schema.task == "classification" and schema.fitting.get("balance") == "class_weights" \
            and "class_weights" not in stats and splits.get("train") is not None:
        from modelyard.data.balance import balanced_class_weights

        stats = {**stats, "class_weights": balanced_class_weights(splits["train"][LABEL].to_numpy(),
                                                                  schema.num_classes)}
    write_metadata(folder, schema, stats, preprocessor=preprocessor, quality=quality, recipe=recipe)


@dataclass
class Dataset:
    """A verified dataset artifact opened for reading (or an in-memory fold of one)."""

    ref: DatasetRef
    path: Path
    schema: DatasetSchema
    stats: dict[str, Any]
    frames: dict[str, pd.DataFrame] | None = None  # set for in-memory folds
    _preprocessor: Preprocessor | None = field(default=None, repr=False)

    # -- rows as stored ------------------------------------------------------------------------
    def frame(self, split: str) -> pd.DataFrame:
        """The stored rows of ``split`` (nothing fitted applied) as a DataFrame."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r} (train, valid, test)")
        if self.frames is not None:
            return self.frames[split].reset_index(drop=True)
        return pq.read_table(self.path / f"{split}.parquet").to_pandas()

    def labels(self, split: str) -> np.ndarray:
        """The stored labels of ``split`` (class codes or values)."""
        frame = self.frame(split)
        return frame[LABEL].to_numpy().copy() if LABEL in frame.columns else np.zeros(len(frame), dtype=np.int64)

    # -- fitted state --------------------------------------------------------------------------
    @property
    def preprocessor(self) -> Preprocessor:
        """The transform fitted on this dataset's train split (refitted for an in-memory fold)."""
        if self._preprocessor is None:
            stored = self.path / PREPROCESSOR_FILE
            if self.frames is None and stored.is_file():
                self._preprocessor = Preprocessor.from_dict(json.loads(stored.read_text("utf-8")))
            elif self.frames is None and not self.schema.fitting:
                # An artifact from before preprocessors: features were used as stored.
                self._preprocessor = Preprocessor(features=list(self.schema.features))
            else:
                train = self.frame("train")
                self._preprocessor = fit_preprocessor(lambda: [train], self.schema, rows=len(train))
        return self._preprocessor

    @property
    def quality(self) -> dict[str, Any]:
        """The preparation record (``quality.json``; empty for folds and older artifacts)."""
        path = self.path / QUALITY_FILE
        return json.loads(path.read_text("utf-8")) if self.frames is None and path.is_file() else {}

    @property
    def class_weights(self) -> list[float] | None:
        """Per-class loss weights when the recipe asked for ``balance: class_weights`` (else None)."""
        if self.schema.task != "classification" or self.schema.fitting.get("balance") != "class_weights":
            return None
        if self.frames is None and "class_weights" in self.stats:
            return list(self.stats["class_weights"])
        from modelyard.data.balance import balanced_class_weights

        return balanced_class_weights(self.labels("train"), self.schema.num_classes)

    def weights(self, split: str) -> np.ndarray | None:
        """Per-row sample weights of ``split`` as stored (None without a weight column)."""
        if not self.schema.weight:
            return None
        return self.frame(split)[self.schema.weight].to_numpy(dtype=np.float32)

    # -- model-ready inputs --------------------------------------------------------------------
    def arrays(self, split: str, *, transform: bool = True, balance: bool = True,
               augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) of a tabular or image split, ready for a model.

        Tabular inputs are the fitted transform's (N, F) float32 (``transform=False``: the
        stored values); images (N, C, H, W) float32. On the train split, outlier rows are
        dropped (``outliers.action: drop``), classes balanced and offline augmented copies
        added, as the recipe asked; ``balance`` / ``augment`` turn those off.
        """
        frame = self.frame(split)
        y = frame[LABEL].to_numpy().copy() if LABEL in frame.columns else np.zeros(len(frame), dtype=np.int64)
        if self.schema.modality == "image":
            assert self.schema.image and self.schema.image_shape
            flat = np.stack(frame[self.schema.image].to_numpy()) if len(frame) else np.zeros((0,))
            x = flat.astype(np.float32).reshape(len(frame), *self.schema.image_shape)
        elif self.schema.modality == "tabular":
            if transform:
                if split == "train":
                    keep = self.preprocessor.inliers(frame)
                    frame, y = frame.loc[keep], y[keep]
                x = self.preprocessor.transform(frame)
            else:
                x = frame[self.schema.features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
        else:
            raise DataError(f"arrays() does not apply to {self.schema.modality} data; use texts() or frame()")
        if split == "train":
            x, y = self._train_view(x, y, balance=balance, augment=augment)
        return np.ascontiguousarray(x, dtype=np.float32), y

    def texts(self, split: str, *, balance: bool = True, augment: bool = True) -> tuple[list[str], np.ndarray]:
        """(texts, labels) of a text split (unlabelled corpora: labels are zeros).

        On the train split, classes are balanced by random over/under-sampling and offline
        augmented copies added, as the recipe asked.
        """
        if not self.schema.text:
            raise DataError(f"texts() needs a text dataset; this one is {self.schema.modality}")
        frame = self.frame(split)
        texts = frame[self.schema.text].astype(str).tolist()
        y = frame[LABEL].to_numpy().copy() if LABEL in frame.columns else np.zeros(len(frame), dtype=np.int64)
        if split == "train":
            texts, y = self._train_view(texts, y, balance=balance, augment=augment)
        return texts, y

    def _train_view(self, x: Any, y: np.ndarray, *, balance: bool, augment: bool) -> tuple[Any, np.ndarray]:
        fitting = self.schema.fitting
        seed = int(fitting.get("seed", 0))
        method = fitting.get("balance", "none")
        if balance and self.schema.task == "classification" and method in ("oversample", "undersample") and len(y):
            from modelyard.data.balance import resample_indices

            index = resample_indices(y, method, seed=seed)
            x = [x[i] for i in index] if isinstance(x, list) else x[index]
            y = y[index]
        elif balance and self.schema.task == "classification" and method in ("smote", "adasyn") and len(y):
            from modelyard.data.balance import synthesize

            x, y = synthesize(x, y, method, seed=seed, k_neighbors=int(fitting.get("k_neighbors", 5)))
        augment_cfg = fitting.get("augment") or {}
        if augment and augment_cfg.get("mode", "offline") == "offline" and len(y):
            pipeline = self.augmenter(offline=True)
            if pipeline is not None:
                from modelyard.data.augment import augment_copies

                x, y = augment_copies(x, y, pipeline, copies=int(augment_cfg.get("copies", 1)), seed=seed + 1)
        return x, y

    def augmenter(self, *, offline: bool = False) -> Any:
        """The recipe's augmentation pipeline for training to apply per batch (``augment.mode: online``).

        Returns None when the recipe has no augmentation for this modality (or it is offline:
        then :meth:`arrays` / :meth:`texts` already add the augmented copies).
        """
        augment_cfg = self.schema.fitting.get("augment") or {}
        if not augment_cfg or (augment_cfg.get("mode", "offline") == "offline") != offline:
            return None
        from modelyard.data.augment import check_augmentations

        return check_augmentations(augment_cfg, self.schema.modality)

    # -- cross-validation ----------------------------------------------------------------------
    def fold_indices(self, k: int | None = None, *, seed: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train rows, held-out rows) of each fold over train + valid (in that order); test is never pooled.

        With ``k`` None the recipe's stored folds (``data.split.folds``) are used. Folds are
        stratified for classification and never split a group.

        Raises:
            ConfigError: no ``k`` and the dataset was prepared without folds.
            DataError: more folds than rows, groups or rows of the smallest class.
        """
        pool = pd.concat([self.frame("train"), self.frame("valid")], ignore_index=True)
        if k is None:
            if not self.schema.fold or FOLD not in pool.columns:
                raise ConfigError("this dataset has no stored folds: pass k, or set data.split.folds")
            assignment = pool[FOLD].to_numpy()
            k = int(assignment.max()) + 1
        else:
            labels = pool[LABEL].to_numpy() if self.schema.task == "classification" else None
            groups = pool[self.schema.group].astype(str).to_numpy() if self.schema.group else None
            assignment = fold_assignments(labels, groups, k=k, seed=int(self.schema.fitting.get("seed", 0))
                                          if seed is None else seed, label_names=self.schema.label_names)
        return [(np.flatnonzero(assignment != i), np.flatnonzero(assignment == i)) for i in range(k)]

    def folds(self, k: int | None = None, *, seed: int | None = None) -> list[Dataset]:
        """One in-memory dataset per fold: ``train`` = the other folds, ``valid`` = the held-out fold,
        ``test`` = the untouched test split; each refits the preprocessor on its own train rows."""
        pool = pd.concat([self.frame("train"), self.frame("valid")], ignore_index=True)
        test = self.frame("test")
        views = []
        for train_rows, held in self.fold_indices(k, seed=seed):
            frames = {"train": pool.iloc[train_rows], "valid": pool.iloc[held], "test": test}
            stats = {"rows": {name: len(f) for name, f in frames.items()}, "fold_of": self.ref.id}
            views.append(Dataset(ref=self.ref, path=self.path, schema=self.schema, stats=stats, frames=frames))
        return views


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
