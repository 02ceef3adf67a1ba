"""Near-duplicate texts: MinHash LSH candidates, verified by exact Jaccard, and their groups.

Pipeline, all vectorised in NumPy (loops run over shingle positions, bands or chunks, never
over texts × permutations):

1. texts are normalised (:func:`modelyard.data.dedup.normalize_text`) and exact copies are
   collapsed to their first row, so a text repeated 10 000 times costs one signature;
2. each text becomes a set of shingles and a MinHash signature (:mod:`modelyard.data.minhash`);
3. LSH: the signature is cut into ``b`` bands of ``r`` rows; texts that agree on a whole band
   become candidate pairs. A pair of Jaccard similarity ``s`` becomes a candidate with
   probability ``1 - (1 - s^r)^b`` (the S-curve). The banding (:func:`lsh_bands`) minimises
   weighted false-positive and false-negative areas under the S-curve, as datasketch does
   (but with ``false_negative_weight=0.9``: a false candidate only costs a check), among the
   bandings that make a pair *at* the threshold a candidate with probability at least
   ``min_recall=0.95``. For the default threshold 0.8 and 128 permutations that is 13 bands
   × 7 rows (91 permutations computed), whose S-curve is: 0.003 at J = 0.3, 0.10 at 0.5,
   0.31 at 0.6, 0.67 at 0.7, 0.85 at 0.75, 0.953 at 0.8, 0.993 at 0.85, > 0.9999 from 0.9.
   (Without the floor the optimum is 14 × 9: 0.87 at 0.8, 0.975 at 0.85, 0.03 at 0.5.)
4. every candidate pair is checked with the exact Jaccard similarity of its shingle sets,
   so the pairs returned are exact (precision 1 against the Jaccard definition).

Empty and missing texts have no shingles and are never near duplicates. Work and memory
are linear in the total shingles, except that a bucket of ``m`` near-identical distinct
texts yields ``m (m - 1) / 2`` candidate pairs: templated corpora can be slow.
Train/valid/test leakage is :mod:`modelyard.data.leakage`.

    pairs = near_duplicate_pairs(texts, threshold=0.8)
    groups = near_duplicate_groups(texts).groups
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.core.errors import ConfigError
from modelyard.data.dedup import MIX1, KeyColumn, exact_duplicate_groups, normalize_texts, splitmix_finalize
from modelyard.data.minhash import (
    CHUNK_ELEMENTS,
    ShingleKind,
    check_shingle,
    concat_ranges,
    permutations,
    shingle_hashes,
    signatures_of,
)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Default least candidate probability of a pair at the threshold (see the module docstring).
MIN_RECALL = 0.95


def lsh_bands(threshold: float, num_perm: int, *, false_negative_weight: float = 0.5,
              min_recall: float = 0.0) -> tuple[int, int]:
    """Bands ``b`` and rows per band ``r`` (``b * r <= num_perm``) for a Jaccard threshold.

    A pair with similarity ``s`` becomes a candidate with probability ``1 - (1 - s^r)^b``.
    The choice minimises ``w_fp * FP + w_fn * FN``, where FP is the area under that curve
    below the threshold and FN the area above it missed, as datasketch's ``MinHashLSH`` does
    (with the same weights it picks the same pair; it integrates with SciPy, we on a grid).

    Args:
        threshold: Jaccard similarity in (0, 1].
        num_perm: signature length.
        false_negative_weight: weight of missed pairs in [0, 1]; false positives get the rest.
        min_recall: in [0, 1): only bandings that make a pair at exactly ``threshold`` a candidate
            with at least this probability are considered (when none does, the one that comes
            closest is returned). 0 (default) considers all, like datasketch.

    Raises:
        ConfigError: an argument is out of range.
    """
    check_threshold(threshold)
    if not 1 <= num_perm <= 4096:
        raise ConfigError(f"num_perm must be in 1..4096, got {num_perm}")
    if not 0.0 <= false_negative_weight <= 1.0:
        raise ConfigError(f"false_negative_weight must be in [0, 1], got {false_negative_weight}")
    if not 0.0 <= min_recall < 1.0:
        raise ConfigError(f"min_recall must be in [0, 1), got {min_recall}")
    return _lsh_bands(float(threshold), int(num_perm), float(false_negative_weight), float(min_recall))


@functools.lru_cache(maxsize=64)
def _lsh_bands(threshold: float, num_perm: int, false_negative_weight: float, min_recall: float,
               ) -> tuple[int, int]:
    grid = 2001
    below = np.linspace(0.0, threshold, grid)
    above = np.linspace(threshold, 1.0, grid)
    best, best_key = (1, 1), (np.inf, np.inf)
    for bands in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // bands + 1, dtype=np.float64)[:, None]
        false_positive = np.trapezoid(1.0 - (1.0 - below ** rows) ** bands, below, axis=1)
        false_negative = np.trapezoid((1.0 - above ** rows) ** bands, above, axis=1)
        error = np.asarray((1.0 - false_negative_weight) * false_positive + false_negative_weight * false_negative)
        # Shortfall below min_recall first (0 for every banding that reaches it), then the error.
        shortfall = np.maximum(min_recall - (1.0 - (1.0 - threshold ** rows[:, 0]) ** bands), 0.0)
        i = int(np.lexsort((error, shortfall))[0])
        if (float(shortfall[i]), float(error[i])) < best_key:
            best, best_key = (bands, i + 1), (float(shortfall[i]), float(error[i]))
    return best


def _band_keys(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    """(N,) uint64 key of one band of each signature (equal bands, equal keys)."""
    state = np.full(len(signatures), rows, dtype=np.uint64) * _GOLDEN
    for column in range(band * rows, (band + 1) * rows):
        state ^= signatures[:, column]
        state *= MIX1
        state ^= state >> np.uint64(29)
    return splitmix_finalize(state)


def _bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i, j), i != j, of positions with equal keys."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    shared = sizes >= 2
    left, right = _clique_pairs(starts[shared], sizes[shared])
    return order[left], order[right]


def _clique_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (p, q), p < q, of positions inside each run ``[start, start + size)``."""
    member = concat_ranges(starts, sizes)
    later = np.repeat(starts + sizes, sizes) - member - 1
    left = np.repeat(member, later)
    return left, left + 1 + concat_ranges(np.zeros(len(later), dtype=np.int64), later)


def _unique_sets(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct members of each CSR segment, as dense int64 ids, in CSR form."""
    ids = pd.factorize(values.view(np.int64))[0].astype(np.int64)
    owner = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    width = int(ids.max(initial=0)) + 1
    first = ~pd.Series(owner * width + ids).duplicated().to_numpy()
    owner, ids = owner[first], ids[first]
    set_offsets = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=len(offsets) - 1), out=set_offsets[1:])
    return ids, set_offsets


def _jaccard(members: np.ndarray, set_offsets: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of the sets ``left[k]`` and ``right[k]`` (CSR sets of dense ids)."""
    sizes = np.diff(set_offsets)
    out = np.empty(len(left), dtype=np.float64)
    width = int(members.max(initial=0)) + 1
    per_pair = sizes[left] + sizes[right]
    ends = np.cumsum(per_pair)
    first = 0
    while first < len(left):
        last = max(int(np.searchsorted(ends, ends[first] - per_pair[first] + CHUNK_ELEMENTS, side="right")),
                   first + 1)
        chunk = np.arange(first, last)
        pair_of = np.concatenate([np.repeat(chunk - first, sizes[left[chunk]]),
                                  np.repeat(chunk - first, sizes[right[chunk]])])
        gathered = np.concatenate([members[concat_ranges(set_offsets[left[chunk]], sizes[left[chunk]])],
                                   members[concat_ranges(set_offsets[right[chunk]], sizes[right[chunk]])]])
        # A member of both sets appears twice under its pair's key; each set has distinct members.
        keyed = np.sort(pair_of * width + gathered)
        shared = np.bincount(keyed[1:][keyed[1:] == keyed[:-1]] // width, minlength=len(chunk))
        union = per_pair[chunk] - shared
        out[chunk] = np.divide(shared, union, out=np.zeros(len(chunk)), where=union > 0)
        first = last
    return out


@dataclass(frozen=True)
class Candidates:
    """Verified near-duplicate pairs between representatives (first rows of exact-duplicate groups)."""

    left: np.ndarray
    right: np.ndarray
    jaccard: np.ndarray
    duplicate_of: np.ndarray  # (N,) first row of each row's exact-duplicate group
    has_shingles: np.ndarray  # (N,) bool


def near_candidates(texts: KeyColumn, *, threshold: float, num_perm: int, shingle: ShingleKind, shingle_size: int,
                    seed: int, false_negative_weight: float, min_recall: float,
                    split_of: np.ndarray | None = None) -> Candidates:
    """Steps 1-4 of the module docstring on the representatives of ``texts``.

    With ``split_of``, representative pairs that cannot link two rows of different splits are skipped.
    """
    check_threshold(threshold)
    check_shingle(shingle, shingle_size)  # before any early return, so bad parameters fail on any input
    bands, rows = lsh_bands(threshold, num_perm, false_negative_weight=false_negative_weight, min_recall=min_recall)
    normalized = normalize_texts(texts)
    exact = exact_duplicate_groups(normalized, normalize=False)
    has_text = pc.fill_null(pc.greater(pc.binary_length(normalized), 0), False).to_numpy(zero_copy_only=False)
    reps = np.flatnonzero(exact.keep & has_text)
    empty = np.zeros(0, dtype=np.int64)
    if len(reps) < 2:
        return Candidates(empty, empty, np.zeros(0), exact.duplicate_of, has_text)
    rep_texts = normalized.take(pa.array(reps))
    values, offsets = shingle_hashes(rep_texts, shingle=shingle, shingle_size=shingle_size)
    signatures = signatures_of(values, offsets, *permutations(bands * rows, seed))
    found = []
    for band in range(bands):
        i, j = _bucket_pairs(_band_keys(signatures, band, rows))
        found.append(np.minimum(i, j) * len(reps) + np.maximum(i, j))
    pair_codes = np.unique(np.concatenate(found)) if found else empty
    left, right = pair_codes // len(reps), pair_codes % len(reps)
    if split_of is not None and len(left):
        # Split range of each representative's copies; a pair whose copies all sit in one split cannot leak.
        low = np.full(len(split_of), np.iinfo(np.int64).max)
        high = np.full(len(split_of), -1)
        np.minimum.at(low, exact.duplicate_of, split_of)
        np.maximum.at(high, exact.duplicate_of, split_of)
        low, high = low[reps], high[reps]
        one_split = (low[left] == high[left]) & (low[right] == high[right]) & (low[left] == low[right])
        left, right = left[~one_split], right[~one_split]
    # Exact sets only for the texts in a candidate pair.
    involved, where = np.unique(np.concatenate([left, right]), return_inverse=True)
    counts = np.diff(offsets)[involved]
    sub_offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    members, set_offsets = _unique_sets(values[concat_ranges(offsets[involved], counts)], sub_offsets)
    similarity = _jaccard(members, set_offsets, where[:len(left)], where[len(left):])
    close = similarity >= threshold
    return Candidates(reps[left[close]], reps[right[close]], similarity[close], exact.duplicate_of, has_text)


def near_duplicate_pairs(texts: KeyColumn, *, threshold: float = 0.8, num_perm: int = 128,
                         shingle: ShingleKind = "char", shingle_size: int = 5, seed: int = 0,
                         false_negative_weight: float = 0.9, min_recall: float = MIN_RECALL) -> pd.DataFrame:
    """Pairs of texts whose shingle sets have Jaccard similarity >= ``threshold``.

    Found by MinHash LSH, then each candidate checked exactly, so every pair returned is a true
    near duplicate; a pair can be missed when LSH does not propose it (rarely near the
    threshold, almost never well above it). Exact copies (after normalisation) are pairs with
    similarity 1.

    Args:
        texts: the texts (list, pandas, Arrow or NumPy column); missing and empty texts never pair.
        threshold: Jaccard similarity in (0, 1].
        num_perm: MinHash signature length (LSH uses ``bands * rows <= num_perm`` of it).
        shingle: ``char`` or ``word`` shingles.
        shingle_size: characters or words per shingle.
        seed: seeds the permutations; the same inputs and seed give the same pairs.
        false_negative_weight: how much the banding fears missed pairs (see :func:`lsh_bands`).
        min_recall: the least probability that LSH proposes a pair at exactly ``threshold``
            (see :func:`lsh_bands`); pairs above it are proposed with higher probability.

    Returns:
        Columns ``left``, ``right`` (row positions, ``left < right``) and ``jaccard``, sorted.

    Raises:
        ConfigError: a parameter is out of range.
    """
    found = near_candidates(texts, threshold=threshold, num_perm=num_perm, shingle=shingle,
                             shingle_size=shingle_size, seed=seed, false_negative_weight=false_negative_weight,
                            min_recall=min_recall)
    members = members_by_representative(found.duplicate_of, found.has_shingles)
    # Copies of one text pair with each other at similarity 1 ...
    repeated = members.sizes > 1
    first, second = _clique_pairs(members.starts[repeated], members.sizes[repeated])
    # ... and every copy of one side of a verified pair pairs with every copy of the other side.
    left, right, similarity = expand_pairs(found, members)
    left_parts = [members.rows[first], left]
    right_parts = [members.rows[second], right]
    similarity_parts = [np.ones(len(first)), similarity]
    left, right = np.concatenate(left_parts), np.concatenate(right_parts)
    frame = pd.DataFrame({"left": np.minimum(left, right), "right": np.maximum(left, right),
                          "jaccard": np.concatenate(similarity_parts)})
    return frame.sort_values(["left", "right"], kind="stable", ignore_index=True)


@dataclass(frozen=True)
class Members:
    """Rows grouped by exact-duplicate representative (only rows with shingles)."""

    rows: np.ndarray  # rows ordered by (representative, row)
    starts: np.ndarray  # start of each representative's run in ``rows``
    sizes: np.ndarray  # run length
    slot: np.ndarray  # (N,) run index of each representative row (-1 elsewhere)


def members_by_representative(duplicate_of: np.ndarray, has_shingles: np.ndarray) -> Members:
    rows = np.flatnonzero(has_shingles)
    rows = rows[np.argsort(duplicate_of[rows], kind="stable")]
    reps = duplicate_of[rows]
    starts = np.flatnonzero(np.r_[True, reps[1:] != reps[:-1]]) if len(rows) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(rows)])
    slot = np.full(len(duplicate_of), -1, dtype=np.int64)
    slot[reps[starts]] = np.arange(len(starts))
    return Members(rows=rows, starts=starts, sizes=sizes, slot=slot)


def expand_pairs(found: Candidates, members: Members) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Representative pairs expanded to every (copy of left, copy of right) pair of rows."""
    where_left, where_right = members.slot[found.left], members.slot[found.right]
    size_left, size_right = members.sizes[where_left], members.sizes[where_right]
    combos = size_left * size_right
    pair = np.repeat(np.arange(len(found.left)), combos)
    k = concat_ranges(np.zeros(len(combos), dtype=np.int64), combos)
    left = members.rows[members.starts[where_left][pair] + k // size_right[pair]]
    right = members.rows[members.starts[where_right][pair] + k % size_right[pair]]
    return left, right, found.jaccard[pair]


@dataclass(frozen=True)
class NearDuplicateGroups:
    """Clusters of near-duplicate texts (connected by verified pairs).

    Attributes:
        groups: row positions of each group of two or more texts, ascending, ordered by first row.
        lowest_similarity: per group, the lowest Jaccard similarity of the verified pairs that
            joined it (1.0 for a group of exact copies).
    """

    groups: list[np.ndarray]
    lowest_similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.groups)

    def keep(self, num_rows: int) -> np.ndarray:
        """(num_rows,) bool: False on every member of a group but its first."""
        keep = np.ones(num_rows, dtype=bool)
        for members in self.groups:
            keep[members[1:]] = False
        return keep


def near_duplicate_groups(texts: KeyColumn, *, threshold: float = 0.8, num_perm: int = 128,
                          shingle: ShingleKind = "char", shingle_size: int = 5, seed: int = 0,
                          false_negative_weight: float = 0.9, min_recall: float = MIN_RECALL,
                          ) -> NearDuplicateGroups:
    """Groups of texts linked by near-duplicate pairs (union-find over :func:`near_duplicate_pairs`).

    Linking is transitive: A ~ B and B ~ C put A and C in one group even when A and C are
    further apart than ``threshold``. Arguments as in :func:`near_duplicate_pairs`.
    """
    found = near_candidates(texts, threshold=threshold, num_perm=num_perm, shingle=shingle,
                             shingle_size=shingle_size, seed=seed, false_negative_weight=false_negative_weight,
                            min_recall=min_recall)
    n = len(found.duplicate_of)
    # Copies join their representative; verified pairs join representatives.
    copies = np.flatnonzero(found.has_shingles & (found.duplicate_of != np.arange(n)))
    roots = _components(n, np.concatenate([found.left, copies]), np.concatenate([found.right,
                                                                                 found.duplicate_of[copies]]))
    sizes = np.bincount(roots, minlength=n)
    in_group = np.flatnonzero(sizes[roots] >= 2)
    in_group = in_group[np.argsort(roots[in_group], kind="stable")]
    bounds = np.flatnonzero(np.diff(roots[in_group])) + 1
    groups = np.split(in_group, bounds) if len(in_group) else []
    lowest = np.ones(n)
    np.minimum.at(lowest, roots[found.left], found.jaccard)
    return NearDuplicateGroups(groups=groups, lowest_similarity=np.array([lowest[g[0]] for g in groups]))


def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(n,) label of each node's connected component: its smallest node (vectorised union-find).

    Each round hooks the larger root of every unsatisfied edge under the smaller one, then
    compresses paths by pointer jumping; a few rounds suffice.
    """
    parent = np.arange(n, dtype=np.int64)
    while True:
        while True:  # pointer jumping to the roots
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        a, b = parent[left], parent[right]
        open_edges = a != b
        if not open_edges.any():
            return parent
        a, b = a[open_edges], b[open_edges]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))


def check_threshold(threshold: float) -> None:
    """Raise ConfigError unless ``threshold`` is in (0, 1]."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"near-duplicate threshold must be in (0, 1], got {threshold}")


__all__ = ["NearDuplicateGroups", "lsh_bands", "near_duplicate_groups", "near_duplicate_pairs"]
