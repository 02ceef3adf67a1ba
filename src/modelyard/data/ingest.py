"""Stream a source once: validate, clean and de-identify every chunk into a scratch Parquet table.

What later steps need for every row stays in memory as small arrays (a 64-bit content
key, the label, the group and time keys: about 30 bytes a row); the rows themselves wait
on disk. So a file larger than memory is prepared in memory proportional to its row
count, not its size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.config.data import DataConfig
from modelyard.core.errors import DataError
from modelyard.data.augment import check_augmentations
from modelyard.data.clean import clean_chunk
from modelyard.data.memory import release_free_memory
from modelyard.data.pii_step import PiiStep
from modelyard.data.quality import QualityLog
from modelyard.data.row_keys import row_keys
from modelyard.data.schema import LABEL, ROW, Roles, apply_policy, coerce_chunk, resolve_roles
from modelyard.data.sources import Source

SCRATCH_FILE = "rows.parquet"


@dataclass
class Ingested:
    """The cleaned rows (on disk) and their per-row keys (in memory)."""

    table: Path
    roles: Roles
    rows: np.ndarray                 # (N,) int64 source row numbers
    keys: np.ndarray                 # (N,) uint64 content keys of the inputs
    labels: np.ndarray | None        # (N,) int32 provisional codes (classification) / float64 (regression)
    label_values: list[str] = field(default_factory=list)  # provisional code -> label text
    groups: np.ndarray | None = None  # (N,) uint64
    times: np.ndarray | None = None   # (N,) float64
    rows_read: int = 0

    @property
    def n(self) -> int:
        """Rows kept after ingest."""
        return len(self.rows)


def scratch_schema(roles: Roles, *, task: str) -> pa.Schema:
    """Columns of the scratch table: the kept columns as typed, the raw label and the source row."""
    fields = [pa.field(c, pa.string() if c in roles.categorical else pa.float64()) for c in roles.features]
    if roles.text:
        fields.append(pa.field(roles.text, pa.string()))
    if roles.image:
        fields.append(pa.field(roles.image, pa.list_(pa.float32())))
    for col in dict.fromkeys(c for c in (roles.group, roles.id) if c):
        fields.append(pa.field(col, pa.string()))
    for numeric in (roles.weight, roles.time):
        if numeric:
            fields.append(pa.field(numeric, pa.float64()))
    if roles.label is not None:
        fields.append(pa.field(LABEL, pa.float64() if task == "regression" else pa.string()))
    fields.append(pa.field(ROW, pa.int64()))
    return pa.schema(fields)


def ingest(source: Source, cfg: DataConfig, *, task: str, scratch: Path, log: QualityLog) -> Ingested:
    """Read, validate, clean and de-identify ``source`` chunk by chunk into ``scratch/rows.parquet``.

    Raises:
        DataError: the source has no rows, or a chunk fails validation under ``fail``.
        ConfigError / PluginError: the recipe's augmentations do not fit the data (checked
            on the first chunk, before the rest is read).
    """
    from modelyard.data.artifact import to_table

    roles: Roles | None = None
    writer: pq.ParquetWriter | None = None
    columns: pa.Schema | None = None
    pii: PiiStep | None = None
    parts: dict[str, list[np.ndarray]] = {"rows": [], "keys": [], "labels": [], "groups": [], "times": []}
    label_codes: dict[str, int] = {}
    rows_read = 0
    try:
        for chunk in source.chunks():
            if roles is None:
                roles = resolve_roles(cfg, task, source, chunk.frame)
                check_augmentations(cfg.augment, roles.modality)
                pii = PiiStep.create(cfg.pii, roles, source) if cfg.pii.action != "off" else None
                columns = scratch_schema(roles, task=task)
                writer = pq.ParquetWriter(scratch / SCRATCH_FILE, columns, compression="lz4")
                for col, how in roles.inferred.items():
                    log.step("read").details.setdefault("inferred", {})[col] = how
            assert columns is not None and writer is not None
            rows_read += len(chunk.frame)
            log.step("read").rows(len(chunk.frame), len(chunk.frame))
            frame, failures = coerce_chunk(chunk.frame, chunk.rows, roles, cfg.columns, task=task)
            _profile(frame, roles, log)
            validate = log.step("validate")
            for failure in failures:
                validate.count(f"{failure.reason.split(' (')[0]}/{failure.column}")
                validate.example(row=source.locate(failure.row), column=failure.column, value=repr(failure.value)[:80],
                                 reason=failure.reason)
            before = len(frame)
            frame, _dropped = apply_policy(frame, failures, policy=cfg.validation.invalid, roles=roles,
                                           source=source)
            validate.rows(before, len(frame))
            frame = clean_chunk(frame, roles, cfg.clean, log=log.step("clean"), source=source)
            if pii is not None:
                frame = pii.apply(frame, log.step("pii"))
            if not len(frame):
                continue
            writer.write_table(to_table(frame, columns))
            rows = frame[ROW].to_numpy(dtype=np.int64)
            # 4 bytes a row while row numbers fit: these arrays are what grows with the file.
            parts["rows"].append(rows.astype(np.int32) if rows[-1] < 2**31 - 1 else rows)
            parts["keys"].append(row_keys(frame, roles))
            if roles.label is not None:
                parts["labels"].append(_label_codes(frame[LABEL], label_codes, task))
            if roles.group is not None:
                parts["groups"].append(_group_keys(frame[roles.group], frame[ROW]))
            if roles.time is not None:
                parts["times"].append(frame[roles.time].to_numpy(dtype=np.float64))
            del frame, chunk  # before trimming: the raw chunk is the largest thing freed
            release_free_memory()
    finally:
        if writer is not None:
            writer.close()
    if roles is None or rows_read == 0:
        raise DataError("data source has no rows" + (" (a header only)" if source.info.kind in ("csv", "tsv") else ""),
                        where=source.info.where)
    _check_columns(log, roles, source)
    for note, value in source.info.notes.items():
        log.step("read").details[note] = value
    if source.info.encoding:
        log.step("read").details["encoding"] = {"codec": source.info.encoding, "how": source.info.encoding_how}

    def joined(name: str, dtype: Any) -> np.ndarray:
        return np.concatenate(parts[name]).astype(dtype) if parts[name] else np.zeros(0, dtype=dtype)

    return Ingested(
        table=scratch / SCRATCH_FILE, roles=roles, rows=np.concatenate(parts["rows"]) if parts["rows"] else
        np.zeros(0, dtype=np.int32), keys=joined("keys", np.uint64),
        labels=(joined("labels", np.float64 if task == "regression" else np.int32)
                if roles.label is not None else None),
        label_values=list(label_codes), groups=joined("groups", np.uint64) if roles.group else None,
        times=joined("times", np.float64) if roles.time else None, rows_read=rows_read)


def _label_codes(values: pd.Series, codes: dict[str, int], task: str) -> np.ndarray:
    if task == "regression":
        return values.to_numpy(dtype=np.float64)
    uniques_codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    mapping = np.array([codes.setdefault(str(u), len(codes)) for u in uniques], dtype=np.int32)
    return mapping[uniques_codes]


def _group_keys(values: pd.Series, rows: pd.Series) -> np.ndarray:
    """Group values hashed; a missing group is a group of its own row."""
    text = np.array([v if isinstance(v, str) else f"\0row{r}" for v, r in zip(values.to_numpy(), rows.to_numpy())],
                    dtype=object)
    return pd.util.hash_array(text).astype(np.uint64)


def _profile(frame: pd.DataFrame, roles: Roles, log: QualityLog) -> None:
    for col in roles.features:
        kind = "categorical" if col in roles.categorical else "numeric"
        values = frame[col].to_numpy() if kind == "categorical" else frame[col].to_numpy(dtype=np.float64)
        log.profile(col, kind).update(values)
    if roles.text:
        log.profile(roles.text, "text").update(frame[roles.text].to_numpy())
    for key in (roles.group, roles.id):
        if key and key != roles.text:
            log.profile(key, "categorical").update(frame[key].to_numpy())
    if roles.label is not None:
        values = frame[LABEL].to_numpy()
        log.profile(f"{roles.label} (label)", "numeric" if values.dtype.kind == "f" else "categorical").update(values)


def _check_columns(log: QualityLog, roles: Roles, source: Source) -> None:
    """An entirely missing feature column is an error (it would silently drop or fill every row)."""
    for col in roles.features:
        profile = log.profiles.get(col)
        if profile is not None and profile.count and profile.missing == profile.count:
            raise DataError(f"feature column {col!r} is entirely missing ({profile.count} rows, all empty/NaN)",
                            where=source.info.where, hint="list it in data.columns.ignore")
