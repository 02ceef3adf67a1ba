"""Content keys of rows (64-bit hashes) and exact-duplicate grouping over them.

A row's key hashes its *inputs* after normalisation: texts as
:func:`modelyard.data.dedup.normalize_text` makes them (NFKC, case-folded, whitespace
collapsed), hashed by its vectorised :func:`~modelyard.data.dedup.hash_strings`; image
pixels as bytes; table values as typed. Rows with equal keys and equal labels are exact
duplicates; equal keys with different labels are conflicting duplicates.
Keys are 8 bytes per row, so a file of tens of millions of rows is grouped in memory; two
different inputs share a 64-bit key with probability about n²/2⁶⁵ (1 in 100,000 for 20
million rows), the price of never holding the rows themselves. In-memory callers that
can afford the strings use :func:`modelyard.data.dedup.exact_duplicate_groups`, which
verifies every match.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from modelyard.data.dedup import hash_strings, normalize_texts
from modelyard.data.schema import Roles


def row_keys(frame: pd.DataFrame, roles: Roles) -> np.ndarray:
    """(N,) uint64 keys of the inputs of each row."""
    if not len(frame):
        return np.zeros(0, dtype=np.uint64)
    if roles.text is not None:
        texts = pa.array([t if isinstance(t, str) else None for t in frame[roles.text].to_numpy()],
                         type=pa.large_string())
        return hash_strings(normalize_texts(texts))
    if roles.image is not None:
        digests = (hashlib.blake2b(np.asarray(v, dtype=np.float32).tobytes(), digest_size=8).digest()
                   for v in frame[roles.image].to_numpy())
        return np.fromiter((int.from_bytes(d, "little") for d in digests), dtype=np.uint64, count=len(frame))
    return pd.util.hash_pandas_object(frame[roles.features], index=False).to_numpy().astype(np.uint64)


@dataclass
class DuplicateGroups:
    """Exact duplicates (same key, same label) and conflicts (same key, different labels)."""

    duplicate: np.ndarray        # (N,) bool: a later copy of an earlier row with the same key and label
    conflict: np.ndarray         # (N,) bool: its key appears with more than one label
    groups: int                  # groups of exact duplicates (≥ 2 rows)
    conflict_count: int          # keys seen with more than one label
    conflict_groups: list[np.ndarray]  # row indices of the first conflicting keys (at most ``max_groups``)
    keys: np.ndarray
    label_key: np.ndarray

    def first_copy(self, row: int) -> int:
        """The first row with the same key and label as ``row``."""
        same = (self.keys == self.keys[row]) & (self.label_key == self.label_key[row])
        return int(np.flatnonzero(same)[0])


def group_duplicates(keys: np.ndarray, labels: np.ndarray | None, *, buckets: int = 16,
                     max_groups: int = 1000) -> DuplicateGroups:
    """Group rows by key (and label); the first row of each group is the one that stays.

    Rows are processed in ``buckets`` partitions of the key space (the key's top bits), so
    the sort's temporary arrays are 1/buckets of the rows: memory stays a few bytes per row.
    """
    n = len(keys)
    if labels is None:
        label_key = np.zeros(n, dtype=np.int8)
    elif labels.dtype.kind == "f":
        label_key = pd.util.hash_array(np.asarray(labels))
    else:
        label_key = labels
    duplicate = np.zeros(n, dtype=bool)
    conflict = np.zeros(n, dtype=bool)
    shift = np.uint64(64 - max(1, int(np.log2(buckets))))
    bucket = (keys >> shift).astype(np.uint8) if n else np.zeros(0, dtype=np.uint8)
    groups, conflict_count = 0, 0
    conflict_groups: list[np.ndarray] = []
    for b in range(buckets):
        index = np.flatnonzero(bucket == b)
        if not len(index):
            continue
        k, lab = keys[index], label_key[index]
        order = np.lexsort((lab, k))  # by key, then label; stable, so rows stay in file order
        k_sorted, l_sorted = k[order], lab[order]
        new_key = np.ones(len(k), dtype=bool)
        new_key[1:] = k_sorted[1:] != k_sorted[:-1]
        new_pair = new_key.copy()
        new_pair[1:] |= l_sorted[1:] != l_sorted[:-1]
        duplicate[index[order[~new_pair]]] = True
        pair_id = np.cumsum(new_pair) - 1
        groups += int((np.bincount(pair_id) > 1).sum())
        key_id = np.cumsum(new_key) - 1
        pairs_per_key = np.bincount(key_id, weights=new_pair)
        conflicted = pairs_per_key[key_id] > 1
        if conflicted.any():
            conflict[index[order[conflicted]]] = True
            conflict_count += int((pairs_per_key > 1).sum())
            bounds = np.flatnonzero(np.r_[new_key, True])
            for start, end in itertools.pairwise(bounds):
                if conflicted[start] and len(conflict_groups) < max_groups:
                    conflict_groups.append(np.sort(index[order[start:end]]))
    conflict_groups.sort(key=lambda members: int(members[0]))
    return DuplicateGroups(duplicate=duplicate, conflict=conflict, groups=groups, conflict_count=conflict_count,
                           conflict_groups=conflict_groups, keys=keys, label_key=label_key)
