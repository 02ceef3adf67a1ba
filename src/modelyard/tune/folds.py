"""k-fold cross-validation datasets built from a prepared dataset's train + valid rows.

Each fold is an ordinary dataset artifact (``train`` = k-1 folds, ``valid`` = the held-out
fold, ``test`` = the untouched test split), so a fold's trial is a normal ``train.run``.
Anything fitted on data (scalers, resamplers, cleaners) is fitted by training on the fold's
own ``train`` rows only: the held-out fold never reaches a fit. The data stage applies no
fitted step to the rows it publishes today; when it grows one, its fold hook belongs here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from modelyard.config.tune import CrossValidationConfig
from modelyard.core.errors import DataError
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import open_dataset, write_dataset
from modelyard.store.project import Store


def fold_indices(labels: np.ndarray, cfg: CrossValidationConfig, *, seed: int,
                 classification: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, held-out rows) of each fold, reproducible for a seed.

    Raises:
        DataError: fewer rows than folds, or a class too small to stratify.
    """
    n = len(labels)
    if n < cfg.folds:
        raise DataError(f"{n} train+valid rows cannot make {cfg.folds} folds", where="tune.cv.folds")
    stratify = cfg.stratify and classification
    if stratify:
        counts = np.bincount(labels.astype(np.int64))
        smallest = int(counts[counts > 0].min())
        if smallest < cfg.folds:
            raise DataError(f"a class has only {smallest} train+valid row(s): too few for {cfg.folds} "
                            "stratified folds", where="tune.cv.folds",
                            hint="lower tune.cv.folds or set tune.cv.stratify: false")
        splitter: KFold | StratifiedKFold = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=cfg.folds, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(np.zeros(n), labels)]


def fold_datasets(store: Store, dataset: DatasetRef, cfg: CrossValidationConfig, *, seed: int,
                  run_id: str | None = None) -> list[DatasetRef]:
    """Publish one dataset artifact per fold (parent: ``dataset``, relation ``fold_of``)."""
    base = open_dataset(store, dataset)
    pool = pd.concat([base.frame("train"), base.frame("valid")], ignore_index=True)
    test = base.frame("test")
    labels = pool["label"].to_numpy()
    refs: list[DatasetRef] = []
    folds = fold_indices(labels, cfg, seed=seed, classification=base.schema.task == "classification")
    for index, (train_rows, held_out) in enumerate(folds):
        splits = {"train": pool.iloc[train_rows], "valid": pool.iloc[held_out], "test": test}
        stats = {"rows_in": len(pool) + len(test), "rows": {k: len(v) for k, v in splits.items()},
                 "fold": index, "folds": cfg.folds, "fold_of": dataset.id}
        with store.artifacts.staging() as folder:
            write_dataset(folder, base.schema, splits, stats)
            ref = store.artifacts.publish(folder, kind="dataset", run_id=run_id, parents=[dataset.id],
                                          relation="fold_of", meta={"fold": index, "folds": cfg.folds})
        refs.append(DatasetRef(id=ref.id))
    return refs


def train_plus_valid(store: Store, dataset: DatasetRef, *, run_id: str | None = None) -> DatasetRef:
    """A dataset whose ``train`` split is train + valid (for the final refit) and ``valid`` is empty."""
    base = open_dataset(store, dataset)
    train = pd.concat([base.frame("train"), base.frame("valid")], ignore_index=True)
    splits = {"train": train, "valid": train.iloc[0:0], "test": base.frame("test")}
    stats = {"rows_in": len(train) + len(splits["test"]), "rows": {k: len(v) for k, v in splits.items()},
             "refit_of": dataset.id}
    with store.artifacts.staging() as folder:
        write_dataset(folder, base.schema, splits, stats)
        ref = store.artifacts.publish(folder, kind="dataset", run_id=run_id, parents=[dataset.id],
                                      relation="refit_of", meta={"refit": True})
    return DatasetRef(id=ref.id)
