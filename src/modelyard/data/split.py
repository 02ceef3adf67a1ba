"""Seeded train / valid / test splits: random, stratified, grouped, time-ordered, and k folds.

Every method is reproducible for a seed and returns split codes per row (0 train,
1 valid, 2 test) — and, with ``folds``, a fold 0..k-1 per non-test row, fold 0 being the
valid split. Sizes are ``round(n · fraction)`` rows (grouped splits: whole groups until
the size is reached).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.config.data import SplitConfig
from modelyard.core.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")
TRAIN, VALID, TEST = 0, 1, 2


@dataclass
class SplitResult:
    """Split code per row, the fold per row (-1 for test rows) when k-fold, and the method used."""

    codes: np.ndarray  # (N,) int8
    method: str
    folds: np.ndarray | None = None  # (N,) int8

    def indices(self) -> dict[str, np.ndarray]:
        """Sorted row indices of each split."""
        return {name: np.flatnonzero(self.codes == code) for code, name in enumerate(SPLITS)}


def split_rows(n: int, labels: np.ndarray | None, cfg: SplitConfig, *, seed: int, classification: bool,
               groups: np.ndarray | None = None, times: np.ndarray | None = None,
               label_names: list[str] | None = None) -> SplitResult:
    """Assign every row to a split (and a fold).

    Args:
        n: the number of rows.
        labels: (N,) class codes (classification), values (regression) or None (unlabelled).
        cfg: the recipe's ``data.split``.
        seed: the recipe seed.
        classification: stratification applies to classification only.
        groups: (N,) group keys; rows of a group always share a split (and a fold).
        times: (N,) order keys for ``method: time``.
        label_names: class names, for messages.

    Raises:
        DataError: a split would be empty, a class or the groups are too few for the
            split or the folds, or the method's column is missing.
    """
    method = _method(cfg, classification=classification, groups=groups, labels=labels)
    n_test = round(n * cfg.test)
    n_valid = 0 if cfg.folds else round(n * cfg.valid)
    for name, fraction, size in (("valid", 0.0 if cfg.folds else cfg.valid, n_valid), ("test", cfg.test, n_test)):
        if fraction > 0 and size == 0:
            raise DataError(f"split {name}={fraction:g} of {n} rows leaves the {name} split empty",
                            where=f"data.split.{name}", hint="raise the fraction or add data")
    if n - n_valid - n_test < 1:
        raise DataError(f"splits leave no training rows out of {n}", where="data.split")
    codes = np.zeros(n, dtype=np.int8)
    if method == "time":
        if times is None:
            raise ConfigError("split method 'time' needs data.columns.time", where="data.split.method")
        order = np.argsort(times, kind="stable")  # ties keep file order
        codes[order[n - n_test:]] = TEST
        codes[order[n - n_test - n_valid:n - n_test]] = VALID
    elif method == "group":
        if groups is None:
            raise ConfigError("split method 'group' needs data.columns.group", where="data.split.method")
        codes = _group_codes(groups, n_valid, n_test, seed=seed)
    else:
        strat = labels if method == "stratified" else None
        if strat is not None:
            _check_stratifiable(strat, 1 + (n_valid > 0) + (n_test > 0), label_names, what="splits")
        codes = _stratified_codes(strat, n, n_valid, n_test, seed=seed)
    result = SplitResult(codes=codes, method=method)
    if cfg.folds:
        result.folds = _folds(codes, labels if method == "stratified" else None, groups if method == "group" else None,
                              k=cfg.folds, seed=seed, label_names=label_names)
        result.codes = np.where(codes == TEST, TEST, np.where(result.folds == 0, VALID, TRAIN)).astype(np.int8)
    return result


def _stratified_codes(labels: np.ndarray | None, n: int, n_valid: int, n_test: int, *, seed: int) -> np.ndarray:
    """Seeded split codes; with ``labels``, each class contributes in proportion (largest remainders).

    Memory is a few bytes per row (one permutation), so tens of millions of rows split in place.
    """
    rng = np.random.default_rng(seed)
    codes = np.zeros(n, dtype=np.int8)
    if labels is None:
        order = rng.permutation(n)
        codes[order[:n_test]] = TEST
        codes[order[n_test:n_test + n_valid]] = VALID
        return codes
    if labels.dtype.kind in "iu" and len(labels) and labels.min() >= 0:  # class codes: count without sorting
        counts = np.bincount(labels)
        classes = np.flatnonzero(counts)
        counts = counts[classes]
    else:
        classes, counts = np.unique(labels, return_counts=True)
    quotas = {code: _largest_remainder(counts, size) for code, size in ((TEST, n_test), (VALID, n_valid))}
    for c in range(len(classes)):
        # One class's rows at a time (ascending): 8 bytes per row of the largest class, not of all rows.
        members = np.flatnonzero(labels == classes[c])
        members = members[rng.permutation(len(members))]
        t, v = quotas[TEST][c], quotas[VALID][c]
        codes[members[:t]] = TEST
        codes[members[t:t + v]] = VALID
    return codes


def _largest_remainder(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts``, rounding by largest remainders."""
    exact = counts * (total / counts.sum())
    share = np.floor(exact).astype(np.int64)
    remainder = exact - share
    # Ties go to the larger class, then the lower code: deterministic.
    order = np.lexsort((np.arange(len(counts)), -counts, -remainder))
    share[order[: total - int(share.sum())]] += 1
    return share


def _method(cfg: SplitConfig, *, classification: bool, groups: np.ndarray | None, labels: np.ndarray | None) -> str:
    if cfg.method != "auto":
        if cfg.method == "stratified" and not classification:
            raise ConfigError("stratified splits need a classification task", where="data.split.method")
        return cfg.method
    if groups is not None:
        return "group"
    return "stratified" if cfg.stratify and classification and labels is not None else "random"


def _check_stratifiable(labels: np.ndarray, parts: int, names: list[str] | None, *, what: str) -> None:
    counts = np.bincount(labels.astype(np.int64))
    smallest = int(counts[counts > 0].min())
    if smallest < parts:
        cls = int(np.flatnonzero(counts == smallest)[0])
        name = names[cls] if names and cls < len(names) else f"code {cls}"
        raise DataError(f"class {name!r} has {smallest} row(s): too few to stratify into {parts} {what}",
                        where="data.split", hint="set data.split.stratify: false, lower the count, or add data")


def _group_codes(groups: np.ndarray, n_valid: int, n_test: int, *, seed: int) -> np.ndarray:
    """Whole groups, in a seeded random order, fill test, then valid, until each reaches its size."""
    keys, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(keys))
    group_code = np.zeros(len(keys), dtype=np.int8)
    filled = {TEST: 0, VALID: 0}
    for g in order:
        for code, target in ((TEST, n_test), (VALID, n_valid)):
            if filled[code] < target:
                group_code[g] = code
                filled[code] += int(sizes[g])
                break
    codes = group_code[inverse]
    for code, target, name in ((TEST, n_test, "test"), (VALID, n_valid, "valid")):
        if target and not (codes == code).any():
            raise DataError(f"{len(keys)} group(s) are too few to fill the {name} split", where="data.split")
    if not (codes == TRAIN).any():
        raise DataError(f"{len(keys)} group(s) leave no group for the train split", where="data.split",
                        hint="lower data.split.valid / test or add groups")
    return codes


def _folds(codes: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None, *, k: int, seed: int,
           label_names: list[str] | None) -> np.ndarray:
    """Fold 0..k-1 of every non-test row (-1 for test rows)."""
    pool = np.flatnonzero(codes != TEST)
    folds = np.full(len(codes), -1, dtype=np.int8)
    if len(pool) < k:
        raise DataError(f"{len(pool)} non-test rows cannot make {k} folds", where="data.split.folds")
    y = labels[pool] if labels is not None else None
    g = groups[pool] if groups is not None else None
    if y is not None:
        _check_stratifiable(y, k, label_names, what="folds")
    if g is not None and len(np.unique(g)) < k:
        raise DataError(f"{len(np.unique(g))} group(s) cannot make {k} folds", where="data.split.folds")
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    splitter: Any
    if y is not None and g is not None:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif g is not None:
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif y is not None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(pool)), y, g)):
        folds[pool[held]] = fold
    return folds


def fold_assignments(labels: np.ndarray | None, groups: np.ndarray | None, *, k: int, seed: int,
                     label_names: list[str] | None = None) -> np.ndarray:
    """Fold 0..k-1 of every row (stratified by ``labels``, grouped by ``groups`` when given).

    Raises:
        DataError: fewer rows, groups or rows of the smallest class than folds.
    """
    n = next(len(a) for a in (labels, groups, np.zeros(0)) if a is not None)
    return _folds(np.zeros(n, dtype=np.int8), labels, groups, k=k, seed=seed, label_names=label_names)
