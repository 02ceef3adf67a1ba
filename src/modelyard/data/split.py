"""Seeded train / valid / test splits (stratified where asked)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from modelyard.config.data import SplitConfig
from modelyard.core.errors import DataError


def split_indices(labels: np.ndarray, cfg: SplitConfig, *, seed: int, stratify: bool) -> dict[str, np.ndarray]:
    """Indices of each split, sorted, reproducible for a given seed.

    Raises:
        DataError: a split would be empty, or a class is too small to stratify.
    """
    n = len(labels)
    index = np.arange(n)
    sizes = {"valid": round(n * cfg.valid), "test": round(n * cfg.test)}
    for name, fraction in (("valid", cfg.valid), ("test", cfg.test)):
        if fraction > 0 and sizes[name] == 0:
            raise DataError(f"split {name}={fraction:g} of {n} rows leaves the {name} split empty")
    if n - sizes["valid"] - sizes["test"] < 1:
        raise DataError(f"splits leave no training rows out of {n}")
    strat = labels if stratify else None
    if stratify:
        counts = np.bincount(labels.astype(np.int64))
        smallest = counts[counts > 0].min()
        parts = 1 + (sizes["valid"] > 0) + (sizes["test"] > 0)
        if smallest < parts:
            cls = int(np.flatnonzero(counts == smallest)[0])
            raise DataError(f"class code {cls} has {smallest} row(s): too few to stratify into {parts} splits",
                            hint="set data.split.stratify: false or add data")
    out: dict[str, np.ndarray] = {}
    rest = index
    for name in ("test", "valid"):
        if sizes[name] == 0:
            out[name] = np.array([], dtype=np.int64)
            continue
        rest, taken = train_test_split(rest, test_size=sizes[name], random_state=seed,
                                       stratify=strat[rest] if strat is not None else None)
        out[name] = np.sort(taken)
    out["train"] = np.sort(rest)
    return {k: out[k] for k in ("train", "valid", "test")}
