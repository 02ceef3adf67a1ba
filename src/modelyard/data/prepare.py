"""The data stage, step by step: ingest → duplicates → label issues → split → leakage → write.

Every step records rows in / out, counts and examples in the :class:`QualityLog`, saved as
``quality.json`` in the dataset artifact. Rows are streamed from the scratch table twice
at most (near-duplicates and label issues read only the columns they need, and only up to
their ``max_rows``), so preparing a file larger than memory stays within memory.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from modelyard.config.data import DataConfig
from modelyard.config.recipe import Recipe
from modelyard.core.errors import DataError
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import RECIPE_FILE, SplitWriter, write_metadata
from modelyard.data.balance import balanced_class_weights, class_distribution, resampled_counts
from modelyard.data.ingest import Ingested, ingest
from modelyard.data.memory import release_free_memory
from modelyard.data.preprocess import fit_preprocessor
from modelyard.data.quality import QualityLog
from modelyard.data.row_keys import group_duplicates
from modelyard.data.schema import FOLD, LABEL, ROW, TEXT_TASKS, DatasetSchema
from modelyard.data.sources import Source, open_source
from modelyard.data.split import SPLITS, TEST, TRAIN, VALID, split_rows
from modelyard.store.context import RunContext

_READ_BATCH = 65_536
DROPPED = -1


def prepare(recipe: Recipe, *, ctx: RunContext) -> DatasetRef:
    """Prepare the recipe's dataset and publish it; see :func:`modelyard.data.run`."""
    cfg, task, seed = recipe.data, str(recipe.task), recipe.seed
    log = QualityLog(cfg.max_examples)
    source = open_source(cfg.source)
    ctx.progress.start("prepare data", None)
    scratch = Path(tempfile.mkdtemp(prefix="data-", dir=ctx.store.artifacts.tmp))
    try:
        data = ingest(source, cfg, task=task, scratch=scratch, log=log)
        if data.n == 0:
            raise DataError(f"every one of the {data.rows_read} rows was dropped while cleaning "
                            f"({_drop_story(log)})", where=source.info.where)
        schema = _schema(cfg, task, seed, source, data)
        codes = _final_labels(data, schema, source)
        keep = np.ones(data.n, dtype=bool)
        relabel: dict[int, int] = {}
        _duplicates(cfg, data, codes, keep, log, source, names=schema.label_names)
        _near_duplicates(cfg, data, keep, log, source)
        _label_issues(cfg, data, schema, codes, keep, relabel, log, source, seed=seed)
        if relabel:
            codes = codes.copy()
            codes[list(relabel)] = list(relabel.values())
        assignment, folds = _split(cfg, data, schema, codes, keep, log, seed=seed)
        _leakage(cfg, data, assignment, log, source)
        release_free_memory()
        ctx.progress.advance(1, step="write")
        with ctx.store.artifacts.staging() as folder:
            rows = _write_splits(folder, schema, data, codes, assignment, folds)
            release_free_memory()
            preprocessor = fit_preprocessor(lambda: _read_split(folder, "train", schema), schema,
                                            rows=rows["train"])
            stats = _stats(cfg, schema, folder, rows, data, log)
            _fitted_steps(cfg, schema, folder, preprocessor, stats, log)
            log.sections["schema"] = {"modality": schema.modality, "features": schema.features,
                                      "categorical": schema.categorical, "text": schema.text,
                                      "image_shape": schema.image_shape, "label_names": schema.label_names}
            write_metadata(folder, schema, stats, preprocessor=preprocessor, quality=log.to_dict(),
                           recipe=_recorded_recipe(cfg, task, seed))
            ref = ctx.store.artifacts.publish(folder, kind="dataset", run_id=ctx.run_id,
                                              meta={"source": schema.source, "modality": schema.modality,
                                                    "rows": rows})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {"dataset": ref.id, "rows_in": data.rows_read, **{f"rows/{k}": v for k, v in rows.items()},
               **log.summary()}
    ctx.store.runs.set_summary(ctx.run_id, summary)
    ctx.metrics.log(0, {k: float(v) for k, v in summary.items() if isinstance(v, int | float)})
    return DatasetRef(id=ref.id)


def _parquet(path: Path) -> pq.ParquetFile:
    """A Parquet file to stream. ``pre_buffer`` is off: with it, pyarrow keeps every row group's bytes
    it has read until the file is closed, so a streamed pass over a big file grows by its size."""
    return pq.ParquetFile(path, pre_buffer=False)


def _recorded_recipe(cfg: DataConfig, task: str, seed: int) -> dict[str, Any]:
    """The recipe choices that shaped the dataset (``recipe.json``); read sizes are not among them."""
    data = cfg.model_dump(mode="json")
    data["source"].pop("chunk_rows", None)
    return {"data": data, "task": task, "seed": seed}


def _drop_story(log: QualityLog) -> str:
    parts = [f"{s['step']}: {s['rows_in'] - s['rows_out']}" for s in log.to_dict()["steps"]
             if s["rows_in"] != s["rows_out"]]
    return ", ".join(parts) or "no step kept a row"


def _schema(cfg: DataConfig, task: str, seed: int, source: Source, data: Ingested) -> DatasetSchema:
    roles = data.roles
    schema = DatasetSchema(
        task=task, modality=roles.modality, label=LABEL if roles.label is not None else "",
        features=list(roles.features), categorical=[c for c in roles.features if c in roles.categorical],
        text=roles.text, image=roles.image, image_shape=list(source.info.image_shape or ()) or None,
        group=roles.group, id=roles.id, weight=roles.weight, time=roles.time,
        fold=FOLD if cfg.split.folds else None, folds=cfg.split.folds, source=source.info.where,
        fitting={"missing": cfg.clean.missing, "fill_value": cfg.clean.fill_value,
                 "outliers": cfg.clean.outliers.model_dump(mode="json"), "normalize": cfg.normalize,
                 "balance": cfg.balance.method, "k_neighbors": cfg.balance.k_neighbors,
                 "augment": cfg.augment.model_dump(mode="json") if _has_augment(cfg) else {}, "seed": seed})
    if cfg.balance.method in ("smote", "adasyn") and schema.modality != "tabular":
        raise DataError(f"balance.method {cfg.balance.method!r} synthesises numeric feature rows; this dataset is "
                        f"{schema.modality}", where="data.balance.method", hint="use oversample or class_weights")
    if cfg.balance.method != "none" and task != "classification":
        raise DataError(f"balance.method {cfg.balance.method!r} needs a classification task", where="data.balance")
    return schema


def _has_augment(cfg: DataConfig) -> bool:
    return bool(cfg.augment.image or cfg.augment.text or cfg.augment.tabular)


def _natural_order(values: list[str]) -> list[str]:
    """Numeric labels sort as numbers (2 before 10); others alphabetically."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _final_labels(data: Ingested, schema: DatasetSchema, source: Source) -> np.ndarray:
    """Class codes in natural label order (classification), values (regression), or zeros (unlabelled)."""
    if data.labels is None:
        return np.zeros(data.n, dtype=np.int8)
    if schema.task != "classification":
        return data.labels.astype(np.float64)
    names = _natural_order(data.label_values)
    present = np.bincount(data.labels, minlength=len(data.label_values)) > 0
    names = [n for n in names if present[data.label_values.index(n)]]
    if len(names) < 2:
        raise DataError(f"label column {data.roles.label!r} has a single class ({names[0]!r}); classification "
                        "needs at least two", where=source.info.where)
    schema.label_names = names
    order = {name: i for i, name in enumerate(names)}
    remap = np.array([order.get(v, -1) for v in data.label_values], dtype=np.int32)
    return remap[data.labels]


def _examples_of(rows: np.ndarray, data: Ingested, source: Source, limit: int) -> list[str]:
    return [source.locate(int(data.rows[i])) for i in rows[:limit]]


def _duplicates(cfg: DataConfig, data: Ingested, codes: np.ndarray, keep: np.ndarray, log: QualityLog,
                source: Source, *, names: list[str]) -> Any:
    """Exact duplicates (same input and label) and conflicting duplicates (same input, other label)."""
    labels = codes if data.labels is not None else None
    groups = group_duplicates(data.keys, labels)
    step = log.step("duplicates")
    step.count("exact_rows", int(groups.duplicate.sum()))
    step.count("exact_groups", groups.groups)
    step.count("conflict_rows", int(groups.conflict.sum()))
    step.count("conflict_groups", groups.conflict_count)
    for i in np.flatnonzero(groups.duplicate)[: step.max_examples]:
        step.example(kind="exact", row=source.locate(int(data.rows[i])),
                     same_as=source.locate(int(data.rows[groups.first_copy(int(i))])))
    conflicts = []
    for members in groups.conflict_groups[: step.max_examples]:
        conflicts.append({"rows": _examples_of(members, data, source, 10),
                          "labels": sorted({names[int(codes[i])] if names else str(codes[i]) for i in members})})
    step.details["conflicts"] = conflicts
    rows_in = int(keep.sum())
    if cfg.duplicates.exact == "drop":
        keep &= ~groups.duplicate
    if cfg.duplicates.conflicts == "drop":
        keep &= ~groups.conflict
    step.details["action"] = {"exact": cfg.duplicates.exact, "conflicts": cfg.duplicates.conflicts}
    step.rows(rows_in, int(keep.sum()))
    return groups


def _read_columns(data: Ingested, columns: list[str], rows: np.ndarray) -> pd.DataFrame:
    """Columns of the scratch table for the kept ``rows`` (sorted indices), read batch by batch."""
    handle = _parquet(data.table)
    wanted = np.zeros(data.n, dtype=bool)
    wanted[rows] = True
    parts, start = [], 0
    for batch in handle.iter_batches(batch_size=_READ_BATCH, columns=columns):
        frame = batch.to_pandas()
        mask = wanted[start:start + len(frame)]
        start += len(frame)
        if mask.any():
            parts.append(frame.loc[mask])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in columns})


def _near_duplicates(cfg: DataConfig, data: Ingested, keep: np.ndarray, log: QualityLog, source: Source) -> None:
    """Near-duplicate texts (MinHash LSH, verified Jaccard), grouped; reported, or all but the first dropped."""
    near = cfg.duplicates.near
    if near is None or data.roles.text is None:
        return
    step = log.step("near_duplicates")
    rows = np.flatnonzero(keep)
    step.details.update(threshold=near.threshold, action=near.action)
    if len(rows) > near.max_rows:
        step.details["skipped"] = f"{len(rows)} texts > near.max_rows {near.max_rows}"
        step.rows(len(rows), len(rows))
        return
    from modelyard.data.near_dup import near_duplicate_groups

    texts = _read_columns(data, [data.roles.text], rows)[data.roles.text].fillna("").tolist()
    found = near_duplicate_groups(texts, threshold=near.threshold, seed=0)
    local_groups, similarity = found.groups, found.lowest_similarity
    step.count("groups", len(local_groups))
    step.count("rows_in_groups", int(sum(len(m) for m in local_groups)))
    for gid, members in enumerate(local_groups[: step.max_examples]):
        step.example(rows=_examples_of(rows[np.asarray(members)], data, source, 5),
                     texts=[texts[i][:160] for i in members[:3]], jaccard=round(float(similarity[gid]), 3))
    rows_in = int(keep.sum())
    if near.action == "drop":
        for members in local_groups:
            keep[rows[np.asarray(members[1:], dtype=np.int64)]] = False
    step.rows(rows_in, int(keep.sum()))


def _label_issues(cfg: DataConfig, data: Ingested, schema: DatasetSchema, codes: np.ndarray, keep: np.ndarray,
                  relabel: dict[int, int], log: QualityLog, source: Source, *, seed: int) -> None:
    issues_cfg = cfg.label_issues
    if issues_cfg.action == "off" or schema.task != "classification":
        return
    step = log.step("label_issues")
    rows = np.flatnonzero(keep)
    step.details["action"] = issues_cfg.action
    if len(rows) > issues_cfg.max_rows:
        step.details["skipped"] = f"{len(rows)} rows > label_issues.max_rows {issues_cfg.max_rows}"
        step.rows(len(rows), len(rows))
        return
    from modelyard.data.label_issues import find_label_issues

    inputs: np.ndarray | list[str]
    if schema.modality == "text":
        assert schema.text
        inputs = _read_columns(data, [schema.text], rows)[schema.text].fillna("").tolist()
    elif schema.modality == "image":
        assert schema.image
        inputs = np.stack(_read_columns(data, [schema.image], rows)[schema.image].to_numpy())
    else:
        frame = _read_columns(data, schema.features, rows)
        inputs = np.stack([_quick_numeric(frame[c], c in schema.categorical) for c in schema.features], axis=1)
    labels = codes[rows]
    found = find_label_issues(inputs, labels, num_classes=schema.num_classes, folds=issues_cfg.folds, seed=seed,
                              min_confidence=issues_cfg.min_confidence)
    flagged = rows[found.rows]
    step.count("flagged", len(flagged))
    names = schema.label_names
    listed = []
    for i, (row, suggested, prob) in enumerate(zip(flagged, found.suggested, found.given_probability)):
        if i < max(step.max_examples, 20):
            entry = {"row": source.locate(int(data.rows[row])), "given": names[int(codes[row])],
                     "suggested": names[int(suggested)], "given_probability": round(float(prob), 4)}
            if isinstance(inputs, list):
                entry["text"] = inputs[int(found.rows[i])][:160]
            listed.append(entry)
    step.details["flagged_rows"] = listed
    rows_in = int(keep.sum())
    if issues_cfg.action == "drop":
        keep[flagged] = False
    elif issues_cfg.action == "relabel":
        for row, suggested in zip(flagged, found.suggested):
            relabel[int(row)] = int(suggested)
        step.count("relabelled", len(flagged))
    step.rows(rows_in, int(keep.sum()))


def _quick_numeric(values: pd.Series, categorical: bool) -> np.ndarray:
    """A feature as numbers for the quick label-issue model (categories as codes, gaps as the median)."""
    if categorical:
        return pd.factorize(values)[0].astype(np.float64)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(numbers), np.nanmedian(numbers) if np.isfinite(numbers).any() else 0.0, numbers)


def _split(cfg: DataConfig, data: Ingested, schema: DatasetSchema, codes: np.ndarray, keep: np.ndarray,
           log: QualityLog, *, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Split code per ingested row (DROPPED for rows already removed) and the fold per row."""
    rows = np.flatnonzero(keep)
    classification = schema.task == "classification"
    labels = codes[rows] if data.labels is not None else None
    result = split_rows(len(rows), labels, cfg.split, seed=seed, classification=classification,
                        groups=data.groups[rows] if data.groups is not None else None,
                        times=data.times[rows] if data.times is not None else None,
                        label_names=schema.label_names)
    assignment = np.full(data.n, DROPPED, dtype=np.int8)
    assignment[rows] = result.codes
    folds = None
    if result.folds is not None:
        folds = np.full(data.n, -1, dtype=np.int8)
        folds[rows] = result.folds
    step = log.step("split")
    step.rows(len(rows), len(rows))
    step.details.update(method=result.method, valid=cfg.split.valid, test=cfg.split.test, folds=cfg.split.folds,
                        seed=seed)
    for code, name in enumerate(SPLITS):
        step.count(name, int((result.codes == code).sum()))
    if data.groups is not None:
        spans = _groups_spanning(data.groups[rows], result.codes)
        step.details["groups_in_two_splits"] = spans
    return assignment, folds


def _groups_spanning(groups: np.ndarray, codes: np.ndarray) -> int:
    frame = pd.DataFrame({"g": groups, "s": codes})
    return int((frame.groupby("g")["s"].nunique() > 1).sum())


def _leakage(cfg: DataConfig, data: Ingested, assignment: np.ndarray, log: QualityLog, source: Source) -> None:
    """Valid/test rows whose input (exactly or nearly) appears in an earlier split: reported, then removed.

    Texts (up to ``near.max_rows``) are checked pair by pair, exact and near, by
    :func:`modelyard.data.near_dup.cross_split_duplicates`; other data, and texts beyond
    that size, by their exact content keys.
    """
    step = log.step("leakage")
    live = assignment != DROPPED
    rows_in = int(live.sum())
    near = cfg.duplicates.near
    if data.roles.text is not None and near is not None and rows_in <= near.max_rows:
        leaked = _text_leakage(data, assignment, near.threshold, step, source)
        step.details["checked"] = f"exact and near (Jaccard ≥ {near.threshold}) text duplicates"
    else:
        leaked = np.zeros(data.n, dtype=bool)
        for code, earlier in ((VALID, (TRAIN,)), (TEST, (TRAIN, VALID))):
            hits = _seen_earlier(data.keys, assignment, code, earlier, skip=leaked)
            step.count(f"exact/{SPLITS[code]}", int(hits.sum()))
            for i in np.flatnonzero(hits)[:2]:
                step.example(kind="exact", split=SPLITS[code], row=source.locate(int(data.rows[i])))
            leaked |= hits
        step.details["checked"] = "exact duplicates (content keys)" + (
            f"; near duplicates skipped above near.max_rows {near.max_rows}"
            if data.roles.text is not None and near is not None else "")
    step.details["action"] = cfg.duplicates.leakage
    if cfg.duplicates.leakage == "remove":
        for code in (VALID, TEST):
            had = int((assignment == code).sum())
            if had and int((leaked & (assignment == code)).sum()) == had:
                raise DataError(f"every one of the {had} {SPLITS[code]} rows duplicates a row of another split: "
                                f"removing the leaked rows would leave the {SPLITS[code]} split empty",
                                where=source.info.where,
                                hint="drop duplicates (data.duplicates.exact: drop), or data.duplicates.leakage: "
                                     "report")
        assignment[leaked] = DROPPED
    step.rows(rows_in, int((assignment != DROPPED).sum()))


def _text_leakage(data: Ingested, assignment: np.ndarray, threshold: float, step: Any, source: Source) -> np.ndarray:
    from modelyard.data.near_dup import cross_split_duplicates

    assert data.roles.text is not None
    live = np.flatnonzero(assignment != DROPPED)
    texts = _read_columns(data, [data.roles.text], live)[data.roles.text]
    members = {name: live[assignment[live] == code] for code, name in enumerate(SPLITS)}
    splits = {name: texts.iloc[np.searchsorted(live, rows)].tolist() for name, rows in members.items()}
    found = cross_split_duplicates(splits, near_threshold=threshold)
    leaked = np.zeros(data.n, dtype=bool)
    for name, flagged in found.flagged.items():
        leaked[members[name][flagged]] = True
    for name, kinds in found.counts().items():
        for kind, count in kinds.items():
            step.count(f"{kind}/{name}", count)
    for match in found.matches.head(step.max_examples).itertuples():
        row = members[str(match.split)][int(match.row)]
        other = members[str(match.match_split)][int(match.match_row)]
        step.example(kind=match.kind, split=match.split, row=source.locate(int(data.rows[row])),
                     matches=f"{match.match_split}: {source.locate(int(data.rows[other]))}",
                     jaccard=round(float(match.jaccard), 3))
    return leaked


def _seen_earlier(key: np.ndarray, assignment: np.ndarray, code: int, earlier: tuple[int, ...], *,
                  skip: np.ndarray, buckets: int = 16) -> np.ndarray:
    """(N,) bool: rows of split ``code`` whose key also belongs to a row of an ``earlier`` split.

    Keys are checked per partition of the key space (the top bits), so the hash tables hold
    1/buckets of the rows at a time.
    """
    hits = np.zeros(len(key), dtype=bool)
    earlier_rows = (assignment == earlier[0]) | (assignment == earlier[-1])
    part = (key >> np.uint64(60)).astype(np.uint8)
    for b in range(buckets):
        in_part = part == b
        candidates = np.flatnonzero(in_part & (assignment == code) & ~skip)
        if not len(candidates):
            continue
        found = pd.Series(key[candidates]).isin(pd.Series(key[in_part & earlier_rows])).to_numpy()
        hits[candidates[found]] = True
    return hits


def _write_splits(folder: Path, schema: DatasetSchema, data: Ingested, codes: np.ndarray, assignment: np.ndarray,
                  folds: np.ndarray | None) -> dict[str, int]:
    """Stream the scratch table into the split files, with final labels (and folds)."""
    writer = SplitWriter(folder, schema)
    try:
        start = 0
        for batch in _parquet(data.table).iter_batches(batch_size=_READ_BATCH):
            frame = batch.to_pandas()
            span = slice(start, start + len(frame))
            start += len(frame)
            where = assignment[span]
            if schema.labelled:
                frame[LABEL] = codes[span] if schema.task == "classification" else codes[span].astype(np.float32)
            if folds is not None:
                frame[FOLD] = folds[span]
            for code, name in enumerate(SPLITS):
                part = frame.loc[where == code]
                writer.write(name, part.drop(columns=[ROW]))
    finally:
        writer.close()
    if writer.rows["train"] == 0:
        raise DataError("no rows left for the train split after removing duplicates and leaked rows")
    return dict(writer.rows)


def _read_split(folder: Path, split: str, schema: DatasetSchema) -> Any:
    columns = schema.features or None
    if columns is None:
        return []
    handle = _parquet(folder / f"{split}.parquet")
    return (batch.to_pandas() for batch in handle.iter_batches(batch_size=_READ_BATCH, columns=columns))


def _stats(cfg: DataConfig, schema: DatasetSchema, folder: Path, rows: dict[str, int], data: Ingested,
           log: QualityLog) -> dict[str, Any]:
    stats: dict[str, Any] = {"rows_in": data.rows_read, "rows": rows}
    if schema.task == "classification":
        counts = {}
        for split in SPLITS:
            labels = pq.read_table(folder / f"{split}.parquet", columns=[LABEL])[LABEL].to_numpy()
            counts[split] = class_distribution(labels, schema.label_names)
        stats["class_counts"] = {split: c["counts"] for split, c in counts.items()}
        stats["imbalance_ratio"] = counts["train"]["imbalance_ratio"]
        train = pq.read_table(folder / "train.parquet", columns=[LABEL])[LABEL].to_numpy()
        balanced = balanced_class_weights(train, schema.num_classes)
        if cfg.balance.method == "class_weights":
            stats["class_weights"] = balanced
        log.sections["class_balance"] = {"splits": counts, "balanced_class_weights": balanced,
                                         "label_names": schema.label_names}
    if schema.folds:
        stats["folds"] = schema.folds
    return stats


def _fitted_steps(cfg: DataConfig, schema: DatasetSchema, folder: Path, preprocessor: Any, stats: dict[str, Any],
                  log: QualityLog) -> None:
    """Record what the load-time steps do to the train split (outliers, balance, augmentation)."""
    if preprocessor.lower_:
        step = log.step("outliers")
        rows_in = stats["rows"]["train"]
        inside = 0
        for frame in _read_split(folder, "train", schema):
            mask = np.ones(len(frame), dtype=bool)
            for col in preprocessor.lower_:
                values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                outside = (values < preprocessor.lower_[col]) | (values > preprocessor.upper_[col])
                step.count(f"outside/{col}", int(outside.sum()))
                mask &= ~outside
            inside += int(mask.sum())
        step.details.update(method=cfg.clean.outliers.method, action=cfg.clean.outliers.action,
                            bounds={c: [preprocessor.lower_[c], preprocessor.upper_[c]] for c in preprocessor.lower_},
                            split="train (bounds fitted on it; applied at load)")
        step.rows(rows_in, inside if preprocessor.outlier_action == "drop" else rows_in)
    if schema.task == "classification" and cfg.balance.method not in ("none", "class_weights"):
        step = log.step("balance")
        before = [stats["class_counts"]["train"][n] for n in schema.label_names]
        after = resampled_counts(before, cfg.balance.method)
        step.rows(sum(before), sum(after))
        step.details.update(method=cfg.balance.method, split="train (applied at load)",
                            before=dict(zip(schema.label_names, before)), after=dict(zip(schema.label_names, after)))
    if _has_augment(cfg):
        step = log.step("augment")
        names = [s.name for s in getattr(cfg.augment, schema.modality)]
        train = stats["rows"]["train"]
        grow = cfg.augment.copies if cfg.augment.mode == "offline" else 0
        step.rows(train, train * (1 + grow))
        step.details.update(mode=cfg.augment.mode, copies=cfg.augment.copies, augmentations=names,
                            split="train (applied at load)")


__all__ = ["RECIPE_FILE", "TEXT_TASKS", "prepare"]
