"""Near-duplicate texts (MinHash LSH, verified by exact Jaccard) and train/valid/test leakage.

Pipeline, all vectorised in NumPy (loops run over shingle positions, bands or chunks, never
over texts × permutations):

1. texts are normalised (:func:`modelyard.data.dedup.normalize_text`) and exact copies are
   collapsed to their first row, so a text repeated 10 000 times costs one signature;
2. each text becomes a set of shingles: character ``k``-grams (default, robust for short
   texts) or word ``k``-grams, each hashed to 64 bits;
3. MinHash: permutation ``p`` maps a shingle's 32-bit key ``x`` to ``(a_p x + b_p) mod 2^64 >> 32``
   (multiply-add-shift, a strongly universal family), and a text's signature is the
   minimum over its shingles;
4. LSH: the signature is cut into ``b`` bands of ``r`` rows chosen like datasketch does (the
   pair minimising weighted false positive and false negative areas under the S-curve);
   texts that agree on a whole band become candidate pairs;
5. every candidate pair is checked with the exact Jaccard similarity of its shingle sets,
   so the pairs returned are exact (precision 1 against the Jaccard definition). Because a
   false candidate only costs a check, the banding leans towards recall
   (``false_negative_weight=0.9`` by default; datasketch weighs both 0.5).

Empty and missing texts have no shingles and are never near duplicates. Work and memory
are linear in the total shingles, except that a bucket of ``m`` near-identical distinct
texts yields ``m (m - 1) / 2`` candidate pairs: templated corpora can be slow.

    pairs = near_duplicate_pairs(texts, threshold=0.8)
    groups = near_duplicate_groups(texts).groups
    leaks = cross_split_duplicates({"train": tr, "valid": va, "test": te})
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.core.errors import ConfigError
from modelyard.data.dedup import (
    MIX1,
    KeyColumn,
    exact_duplicate_groups,
    hash_strings,
    normalize_texts,
    splitmix_finalize,
)

ShingleKind = Literal["char", "word"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_EMPTY_SLOT = np.uint32(0xFFFFFFFF)  # signature value of a text without shingles
# Elements (shingles × permutations, or gathered set members) NumPy handles per chunk: 4M uint64 = 32 MB.
_CHUNK_ELEMENTS = 1 << 22


def lsh_bands(threshold: float, num_perm: int, *, false_negative_weight: float = 0.5) -> tuple[int, int]:
    """Bands ``b`` and rows per band ``r`` (``b * r <= num_perm``) for a Jaccard threshold.

    A pair with similarity ``s`` becomes a candidate with probability ``1 - (1 - s^r)^b``.
    The choice minimises ``w_fp * FP + w_fn * FN``, where FP is the area under that curve
    below the threshold and FN the area above it missed, as datasketch's ``MinHashLSH`` does
    (with the same weights it picks the same pair; it integrates with SciPy, we on a grid).

    Args:
        threshold: Jaccard similarity in (0, 1].
        num_perm: signature length.
        false_negative_weight: weight of missed pairs in [0, 1]; false positives get the rest.

    Raises:
        ConfigError: an argument is out of range.
    """
    _check_threshold(threshold)
    if not 1 <= num_perm <= 4096:
        raise ConfigError(f"num_perm must be in 1..4096, got {num_perm}")
    if not 0.0 <= false_negative_weight <= 1.0:
        raise ConfigError(f"false_negative_weight must be in [0, 1], got {false_negative_weight}")
    return _lsh_bands(float(threshold), int(num_perm), float(false_negative_weight))


@functools.lru_cache(maxsize=64)
def _lsh_bands(threshold: float, num_perm: int, false_negative_weight: float) -> tuple[int, int]:
    grid = 2001
    below = np.linspace(0.0, threshold, grid)
    above = np.linspace(threshold, 1.0, grid)
    best, best_error = (1, 1), np.inf
    for bands in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // bands + 1, dtype=np.float64)[:, None]
        false_positive = np.trapezoid(1.0 - (1.0 - below ** rows) ** bands, below, axis=1)
        false_negative = np.trapezoid((1.0 - above ** rows) ** bands, above, axis=1)
        error = (1.0 - false_negative_weight) * false_positive + false_negative_weight * false_negative
        i = int(np.argmin(error))
        if error[i] < best_error:
            best, best_error = (bands, i + 1), float(error[i])
    return best


def shingle_hashes(texts: KeyColumn, *, shingle: ShingleKind = "char", shingle_size: int = 5,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of each text's shingles, in CSR form.

    Texts are normalised first. A text shorter than ``shingle_size`` units has one shingle,
    itself; an empty or missing text has none.

    Args:
        texts: the texts.
        shingle: ``char`` (character ``k``-grams) or ``word`` (``k`` consecutive words).
        shingle_size: ``k``.

    Returns:
        ``values`` (uint64, repeats kept) and ``offsets`` (int64, N + 1): text ``i`` owns
        ``values[offsets[i]:offsets[i + 1]]``.
    """
    _check_shingle(shingle, shingle_size)
    normalized = normalize_texts(texts)
    if shingle == "word":
        words = pc.utf8_split_whitespace(normalized)
        counts = pc.fill_null(pc.list_value_length(words), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        units = hash_strings(pc.list_flatten(words).cast(pa.large_string()))
    else:
        strings = [s or "" for s in normalized.to_pylist()]
        counts = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
        units = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    return _kgram_hashes(units, counts, shingle_size)


def _kgram_hashes(units: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``k`` consecutive units (chars or words) inside each text, in CSR form.

    A text shorter than ``k`` units (but not empty) gets one hash of all its units.
    """
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    per_text = np.where(counts >= k, counts - k + 1, np.minimum(counts, 1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(per_text, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=np.uint64)
    full = counts >= k
    windows = len(units) - k + 1
    if full.any() and windows > 0:
        # Hash the window at every position with shifted slices, then keep windows inside one text
        # (a +1/-1 difference array marks each text's first and one-past-last window start).
        state = np.full(windows, k, dtype=np.uint64) * _GOLDEN
        for j in range(k):
            state ^= units[j:j + windows]
            state *= MIX1
            state ^= state >> np.uint64(29)
        marks = np.zeros(windows + 1, dtype=np.int64)
        np.add.at(marks, starts[:-1][full], 1)
        np.add.at(marks, starts[:-1][full] + counts[full] - k + 1, -1)
        inside = np.cumsum(marks[:-1]) > 0
        # Texts come in order, so their windows fill their CSR slots in order.
        slots = _ranges(offsets[:-1][full], per_text[full])
        values[slots] = splitmix_finalize(state[inside])
    short = np.flatnonzero((counts > 0) & ~full)
    if len(short):
        values[offsets[short]] = _whole_hashes(units, starts[short], counts[short])
    return values, offsets


def _whole_hashes(units: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """One hash of all units of each (short) text, mixed like a window of its length."""
    state = counts.astype(np.uint64) * _GOLDEN
    for j in range(int(counts.max())):
        going = counts > j
        mixed = (state[going] ^ units[starts[going] + j]) * MIX1
        state[going] = mixed ^ (mixed >> np.uint64(29))
    return splitmix_finalize(state)


def minhash_signatures(texts: KeyColumn, *, num_perm: int = 128, shingle: ShingleKind = "char",
                       shingle_size: int = 5, seed: int = 0) -> np.ndarray:
    """(N, num_perm) uint32 MinHash signatures (all ``0xFFFFFFFF`` for a text without shingles).

    The share of equal columns of two signatures estimates the Jaccard similarity of the
    two texts' shingle sets. A text's signature depends only on the text, the shingling and
    the seed.
    """
    if not 1 <= num_perm <= 4096:
        raise ConfigError(f"num_perm must be in 1..4096, got {num_perm}")
    values, offsets = shingle_hashes(texts, shingle=shingle, shingle_size=shingle_size)
    return _signatures(values, offsets, *_permutations(num_perm, seed))


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiply-add-shift parameters: odd multipliers ``a`` and offsets ``b``, uint64."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def _signatures(values: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash of each CSR segment of shingle hashes under the permutations (a, b)."""
    n, num_perm = len(offsets) - 1, len(a)
    signatures = np.full((num_perm, n), _EMPTY_SLOT, dtype=np.uint32)  # (P, N): reductions run along rows
    texts = np.flatnonzero(np.diff(offsets) > 0)
    keys = values >> np.uint64(32)
    # Chunks of whole texts holding about _CHUNK_ELEMENTS shingle × permutation values.
    budget = max(_CHUNK_ELEMENTS // num_perm, 1)
    ends = offsets[texts + 1]
    buffer = np.empty(0, dtype=np.uint64)  # reused: a fresh 32 MB array per chunk costs its page faults
    first = 0
    while first < len(texts):
        last = max(int(np.searchsorted(ends, offsets[texts[first]] + budget, side="right")), first + 1)
        chunk = texts[first:last]
        lo, hi = int(offsets[chunk[0]]), int(offsets[chunk[-1] + 1])
        if buffer.size < num_perm * (hi - lo):
            buffer = np.empty(num_perm * (hi - lo), dtype=np.uint64)
        hashed = buffer[:num_perm * (hi - lo)].reshape(num_perm, hi - lo)
        np.multiply(a[:, None], keys[None, lo:hi], out=hashed)  # (P, shingles), wrapping mod 2^64
        hashed += b[:, None]
        hashed >>= np.uint64(32)
        signatures[:, chunk] = np.minimum.reduceat(hashed, offsets[chunk] - lo, axis=1)
        first = last
    return np.ascontiguousarray(signatures.T)


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
    member = _ranges(starts, sizes)
    later = np.repeat(starts + sizes, sizes) - member - 1
    left = np.repeat(member, later)
    return left, left + 1 + _ranges(np.zeros(len(later), dtype=np.int64), later)


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, start + size)`` over the runs."""
    total = int(sizes.sum())
    run_first = np.cumsum(sizes) - sizes
    return np.repeat(starts - run_first, sizes) + np.arange(total, dtype=np.int64)


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
        last = max(int(np.searchsorted(ends, ends[first] - per_pair[first] + _CHUNK_ELEMENTS, side="right")),
                   first + 1)
        chunk = np.arange(first, last)
        pair_of = np.concatenate([np.repeat(chunk - first, sizes[left[chunk]]),
                                  np.repeat(chunk - first, sizes[right[chunk]])])
        gathered = np.concatenate([members[_ranges(set_offsets[left[chunk]], sizes[left[chunk]])],
                                   members[_ranges(set_offsets[right[chunk]], sizes[right[chunk]])]])
        # A member of both sets appears twice under its pair's key; each set has distinct members.
        keyed = np.sort(pair_of * width + gathered)
        shared = np.bincount(keyed[1:][keyed[1:] == keyed[:-1]] // width, minlength=len(chunk))
        union = per_pair[chunk] - shared
        out[chunk] = np.divide(shared, union, out=np.zeros(len(chunk)), where=union > 0)
        first = last
    return out


@dataclass(frozen=True)
class _Candidates:
    """Verified near-duplicate pairs between representatives (first rows of exact-duplicate groups)."""

    left: np.ndarray
    right: np.ndarray
    jaccard: np.ndarray
    duplicate_of: np.ndarray  # (N,) first row of each row's exact-duplicate group
    has_shingles: np.ndarray  # (N,) bool


def _near_candidates(texts: KeyColumn, *, threshold: float, num_perm: int, shingle: ShingleKind, shingle_size: int,
                     seed: int, false_negative_weight: float, split_of: np.ndarray | None = None) -> _Candidates:
    """Steps 1-5 of the module docstring on the representatives of ``texts``.

    With ``split_of``, representative pairs that cannot link two rows of different splits are skipped.
    """
    _check_threshold(threshold)
    _check_shingle(shingle, shingle_size)  # before any early return, so bad parameters fail on any input
    bands, rows = lsh_bands(threshold, num_perm, false_negative_weight=false_negative_weight)
    normalized = normalize_texts(texts)
    exact = exact_duplicate_groups(normalized, normalize=False)
    has_text = pc.fill_null(pc.greater(pc.binary_length(normalized), 0), False).to_numpy(zero_copy_only=False)
    reps = np.flatnonzero(exact.keep & has_text)
    empty = np.zeros(0, dtype=np.int64)
    if len(reps) < 2:
        return _Candidates(empty, empty, np.zeros(0), exact.duplicate_of, has_text)
    rep_texts = normalized.take(pa.array(reps))
    values, offsets = shingle_hashes(rep_texts, shingle=shingle, shingle_size=shingle_size)
    signatures = _signatures(values, offsets, *_permutations(bands * rows, seed))
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
    members, set_offsets = _unique_sets(values[_ranges(offsets[involved], counts)], sub_offsets)
    similarity = _jaccard(members, set_offsets, where[:len(left)], where[len(left):])
    close = similarity >= threshold
    return _Candidates(reps[left[close]], reps[right[close]], similarity[close], exact.duplicate_of, has_text)


def near_duplicate_pairs(texts: KeyColumn, *, threshold: float = 0.8, num_perm: int = 128,
                         shingle: ShingleKind = "char", shingle_size: int = 5, seed: int = 0,
                         false_negative_weight: float = 0.9) -> pd.DataFrame:
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

    Returns:
        Columns ``left``, ``right`` (row positions, ``left < right``) and ``jaccard``, sorted.

    Raises:
        ConfigError: a parameter is out of range.
    """
    found = _near_candidates(texts, threshold=threshold, num_perm=num_perm, shingle=shingle,
                             shingle_size=shingle_size, seed=seed, false_negative_weight=false_negative_weight)
    members = _members_by_representative(found.duplicate_of, found.has_shingles)
    # Copies of one text pair with each other at similarity 1 ...
    repeated = members.sizes > 1
    first, second = _clique_pairs(members.starts[repeated], members.sizes[repeated])
    # ... and every copy of one side of a verified pair pairs with every copy of the other side.
    left, right, similarity = _expand(found, members)
    left_parts = [members.rows[first], left]
    right_parts = [members.rows[second], right]
    similarity_parts = [np.ones(len(first)), similarity]
    left, right = np.concatenate(left_parts), np.concatenate(right_parts)
    frame = pd.DataFrame({"left": np.minimum(left, right), "right": np.maximum(left, right),
                          "jaccard": np.concatenate(similarity_parts)})
    return frame.sort_values(["left", "right"], kind="stable", ignore_index=True)


@dataclass(frozen=True)
class _Members:
    """Rows grouped by exact-duplicate representative (only rows with shingles)."""

    rows: np.ndarray  # rows ordered by (representative, row)
    starts: np.ndarray  # start of each representative's run in ``rows``
    sizes: np.ndarray  # run length
    slot: np.ndarray  # (N,) run index of each representative row (-1 elsewhere)


def _members_by_representative(duplicate_of: np.ndarray, has_shingles: np.ndarray) -> _Members:
    rows = np.flatnonzero(has_shingles)
    rows = rows[np.argsort(duplicate_of[rows], kind="stable")]
    reps = duplicate_of[rows]
    starts = np.flatnonzero(np.r_[True, reps[1:] != reps[:-1]]) if len(rows) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(rows)])
    slot = np.full(len(duplicate_of), -1, dtype=np.int64)
    slot[reps[starts]] = np.arange(len(starts))
    return _Members(rows=rows, starts=starts, sizes=sizes, slot=slot)


def _expand(found: _Candidates, members: _Members) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Representative pairs expanded to every (copy of left, copy of right) pair of rows."""
    where_left, where_right = members.slot[found.left], members.slot[found.right]
    size_left, size_right = members.sizes[where_left], members.sizes[where_right]
    combos = size_left * size_right
    pair = np.repeat(np.arange(len(found.left)), combos)
    k = _ranges(np.zeros(len(combos), dtype=np.int64), combos)
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
                          false_negative_weight: float = 0.9) -> NearDuplicateGroups:
    """Groups of texts linked by near-duplicate pairs (union-find over :func:`near_duplicate_pairs`).

    Linking is transitive: A ~ B and B ~ C put A and C in one group even when A and C are
    further apart than ``threshold``. Arguments as in :func:`near_duplicate_pairs`.
    """
    found = _near_candidates(texts, threshold=threshold, num_perm=num_perm, shingle=shingle,
                             shingle_size=shingle_size, seed=seed, false_negative_weight=false_negative_weight)
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


@dataclass(frozen=True)
class SplitLeakage:
    """Rows of later splits that duplicate a row of an earlier split.

    Attributes:
        flagged: per split, (rows,) bool: True where the row is an exact or near duplicate of a
            row of an earlier split (always all False for the first split).
        matches: one line per flagged row with its best match (exact before near, then the
            highest similarity, then the earliest split): ``split``, ``row``, ``kind``
            (``exact`` / ``near``), ``match_split``, ``match_row``, ``jaccard``.
    """

    flagged: dict[str, np.ndarray]
    matches: pd.DataFrame

    def counts(self) -> dict[str, dict[str, int]]:
        """Flagged rows per split and kind."""
        out = {name: {"exact": 0, "near": 0} for name in self.flagged}
        for (split, kind), count in self.matches.groupby(["split", "kind"], sort=True).size().items():
            out[str(split)][str(kind)] = int(count)
        return out


def cross_split_duplicates(splits: Mapping[str, Sequence[str | None] | KeyColumn], near_threshold: float | None = 0.8,
                           *, num_perm: int = 128, shingle: ShingleKind = "char", shingle_size: int = 5,
                           seed: int = 0, false_negative_weight: float = 0.9) -> SplitLeakage:
    """Leakage: rows of later splits that are exact or near duplicates of rows of earlier splits.

    Splits are ranked in the mapping's order (e.g. train > valid > test): a valid row is
    checked against train, a test row against train and valid. Duplicates inside one split
    are not leakage (that is :func:`exact_duplicate_groups`). Remove the flagged rows from the
    evaluation splits; a test row matching a valid row stays flagged even when that valid row
    is itself removed.

    Args:
        splits: split name -> texts, in rank order.
        near_threshold: Jaccard threshold for near duplicates; None checks exact copies only.
        num_perm, shingle, shingle_size, seed, false_negative_weight: as in :func:`near_duplicate_pairs`.

    Raises:
        ConfigError: no splits, or a parameter out of range.
        DataError: a split's texts are not strings.
    """
    if not splits:
        raise ConfigError("cross_split_duplicates needs at least one split")
    names = list(splits)
    parts = [normalize_texts(splits[name]) for name in names]
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    split_of = np.repeat(np.arange(len(names)), sizes)
    first_row = np.r_[0, np.cumsum(sizes)[:-1]]
    texts = pa.concat_arrays(parts) if parts else pa.array([], type=pa.large_string())
    has_text = pc.fill_null(pc.greater(pc.binary_length(texts), 0), False).to_numpy(zero_copy_only=False)
    # Best match per row as (rank, match row, similarity); rank 0 = exact, 1 = near.
    best_rank = np.full(len(texts), 2, dtype=np.int64)
    best_match = np.full(len(texts), -1, dtype=np.int64)
    best_similarity = np.zeros(len(texts))

    exact = exact_duplicate_groups(texts, normalize=False)
    leaked = has_text & (split_of[exact.duplicate_of] < split_of)
    best_rank[leaked], best_match[leaked], best_similarity[leaked] = 0, exact.duplicate_of[leaked], 1.0

    if near_threshold is not None and len(texts):
        pairs = _cross_split_pairs(texts, split_of, threshold=near_threshold, num_perm=num_perm, shingle=shingle,
                                   shingle_size=shingle_size, seed=seed, false_negative_weight=false_negative_weight)
        later = np.where(split_of[pairs.left] > split_of[pairs.right], pairs.left, pairs.right)
        earlier = np.where(later == pairs.left, pairs.right, pairs.left)
        # Best first: highest similarity, then earliest matched row (splits are concatenated in rank order).
        order = np.lexsort((earlier, -pairs.jaccard.to_numpy()))
        later, earlier, similarity = later[order], earlier[order], pairs.jaccard.to_numpy()[order]
        first_seen = np.unique(later, return_index=True)[1]
        rows, matched, similarity = later[first_seen], earlier[first_seen], similarity[first_seen]
        take = best_rank[rows] > 0
        rows, matched, similarity = rows[take], matched[take], similarity[take]
        best_rank[rows], best_match[rows], best_similarity[rows] = 1, matched, similarity

    flagged_rows = np.flatnonzero(best_rank < 2)
    matches = pd.DataFrame({
        "split": pd.Series([names[s] for s in split_of[flagged_rows]], dtype=object),
        "row": flagged_rows - first_row[split_of[flagged_rows]],
        "kind": np.where(best_rank[flagged_rows] == 0, "exact", "near"),
        "match_split": pd.Series([names[s] for s in split_of[best_match[flagged_rows]]], dtype=object),
        "match_row": best_match[flagged_rows] - first_row[split_of[best_match[flagged_rows]]],
        "jaccard": best_similarity[flagged_rows],
    })
    flagged = {name: (best_rank[first_row[i]:first_row[i] + sizes[i]] < 2) for i, name in enumerate(names)}
    return SplitLeakage(flagged=flagged, matches=matches)


def _cross_split_pairs(texts: pa.Array, split_of: np.ndarray, **near: object) -> pd.DataFrame:
    """Near-duplicate pairs of rows in different splits (exact copies included)."""
    found = _near_candidates(texts, split_of=split_of, **near)  # type: ignore[arg-type]
    left, right, similarity = _expand(found, _members_by_representative(found.duplicate_of, found.has_shingles))
    different = split_of[left] != split_of[right]
    return pd.DataFrame({"left": left[different], "right": right[different], "jaccard": similarity[different]})


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"near-duplicate threshold must be in (0, 1], got {threshold}")


def _check_shingle(shingle: str, shingle_size: int) -> None:
    if shingle not in ("char", "word"):
        raise ConfigError(f"unknown shingle {shingle!r} (known: char, word)")
    if not 1 <= shingle_size <= 64:
        raise ConfigError(f"shingle_size must be in 1..64, got {shingle_size}")


__all__ = ["NearDuplicateGroups", "SplitLeakage", "cross_split_duplicates", "lsh_bands", "minhash_signatures",
           "near_duplicate_groups", "near_duplicate_pairs", "shingle_hashes"]
