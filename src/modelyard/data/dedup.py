"""Exact duplicates: text normalisation, fast grouping of a key column, and conflicting labels.

Grouping hashes each string once with a vectorised 64-bit hash over the Arrow buffers
(eight bytes per step for all rows at once, in blocks of 16 384 rows whose bytes stay in
cache), puts the row number in the hash's low bits and sorts these keys once (NumPy's SIMD
sort), so rows of equal hash line up earliest first. Every later copy is then *checked*
against the first row of its run, so a hash collision can never merge two different strings:
runs that fail the check are grouped again exactly (Arrow dictionary encoding of their rows).

Against ``DataFrame.drop_duplicates`` on 1M short texts (``benchmarks/data_dedup.py``) the
hash is about 60 ms, the sort and check about 50 ms; see docs/data.md for the measured
ratios. A compiled kernel (numba) hashes in about 17 ms, but importing numba and loading its
cached machine code costs about 0.5 s per process, more than it saves below ~10M rows.

Missing values (None / NaN / NA) are one key, as in SQL ``DISTINCT`` and on pandas' ``str``
columns (on an ``object`` column pandas keeps None and NaN apart).

Near duplicates (MinHash LSH) are in :mod:`modelyard.data.lsh`, train/valid/test leakage in
:mod:`modelyard.data.leakage`.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.core.errors import DataError

KeyColumn: TypeAlias = pd.Series | pd.Index | pa.Array | pa.ChunkedArray | np.ndarray | Sequence[Any]

# Rows whose ASCII text needs more than lower-casing to normalise: whitespace other than single
# spaces (str.split() also splits on \x1c-\x1f), runs of spaces, leading or trailing spaces.
_ODD_WHITESPACE = r"[\t\n\r\x0b\x0c\x1c-\x1f]|  |^ | $"
# Strings longer than this many 8-byte words are hashed one by one (blake2b), so that one very
# long string does not make the vectorised loop run thousands of nearly empty steps.
_MAX_VECTOR_WORDS = 128
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)  # SplitMix64's multipliers (minhash.py and lsh.py share them)
MIX2 = np.uint64(0x94D049BB133111EB)
_NULL_HASH = np.uint64(0x6A09E667F3BCC908)  # any constant that "" does not hash to
# _LOW_BYTES[k] keeps the low k bytes of a little-endian word.
_LOW_BYTES = np.array([0, *((1 << (8 * k)) - 1 for k in range(1, 8)), (1 << 64) - 1], dtype=np.uint64)
_TWENTY_NINE = np.uint64(29)
# Strings hashed per block: their bytes (~1 MB for short texts) stay in cache across the word steps.
_HASH_BLOCK = 1 << 14


def normalize_text(text: str) -> str:
    """The form two texts share when they are exact duplicates.

    NFKC, case-folded (then NFKC again, so the result is stable under a second call),
    whitespace runs collapsed to one space, ends stripped.

    Example:
        >>> normalize_text("  Ｈｅｌｌｏ\\tWORLD ")
        'hello world'
    """
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


def normalize_texts(values: KeyColumn) -> pa.Array:
    """:func:`normalize_text` over a column, vectorised; missing values stay missing.

    ASCII rows with ordinary spacing only need lower-casing, which Arrow does for all rows
    at once; the others (non-ASCII, odd whitespace) go through :func:`normalize_text`.

    Args:
        values: strings (a pandas, Arrow or NumPy column, or a list) with optional missing values.

    Returns:
        A ``large_string`` Arrow array of the normalised texts.

    Raises:
        DataError: the values are not strings.
    """
    arr = _string_array(values)
    if arr is None:
        raise DataError("normalize_texts needs a column of strings")
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    arr = arr.cast(pa.large_string())
    lowered = pc.ascii_lower(arr)
    slow_rows = _rows_needing_more_than_lowercase(arr)
    if not len(slow_rows):
        return lowered
    fixed = [normalize_text(s) for s in arr.take(pa.array(slow_rows)).to_pylist()]
    mask = np.zeros(len(arr), dtype=bool)
    mask[slow_rows] = True
    return pc.replace_with_mask(lowered, pa.array(mask), pa.array(fixed, type=pa.large_string()))


def _rows_needing_more_than_lowercase(strings: pa.Array) -> np.ndarray:
    """Rows with a byte outside printable ASCII, two spaces in a row, or a space at either end.

    Read straight off the UTF-8 bytes. It may name a few rows too many (a space pair across two
    rows), which only sends them through :func:`normalize_text` for nothing.
    """
    data, starts, lengths = _string_buffers(strings)
    filled = lengths > 0
    if not filled.any():
        return np.zeros(0, dtype=np.int64)
    # Control bytes (< 0x20) and non-ASCII (>= 0x80) both land above 95 after subtracting 32 (uint8 wraps).
    flagged = (data - np.uint8(32)) > np.uint8(95)
    spaces = data == 32
    flagged[:-1] |= spaces[:-1] & spaces[1:]
    rows = np.flatnonzero(filled)
    odd = np.logical_or.reduceat(flagged, starts[rows])
    odd |= spaces[starts[rows]] | spaces[starts[rows] + lengths[rows] - 1]
    return rows[odd]


@dataclass(frozen=True)
class ExactDuplicates:
    """Rows grouped by equal keys.

    Attributes:
        codes: (N,) int64 group label of each row's key (equal keys, equal labels).
        keep: (N,) bool, True on the first occurrence of each key.
        duplicate_of: (N,) int64 row of the first occurrence of the row's key (itself if first).
    """

    codes: np.ndarray
    keep: np.ndarray
    duplicate_of: np.ndarray

    @property
    def num_rows(self) -> int:
        """Rows grouped."""
        return len(self.codes)

    @property
    def num_unique(self) -> int:
        """Distinct keys (rows kept by :func:`drop_exact_duplicates`)."""
        return int(self.keep.sum())

    @property
    def num_duplicates(self) -> int:
        """Later copies (rows dropped by :func:`drop_exact_duplicates`)."""
        return self.num_rows - self.num_unique

    def groups(self, min_size: int = 2) -> list[np.ndarray]:
        """Row indices of each key with at least ``min_size`` rows, ascending, groups ordered by first row."""
        if not self.num_rows:
            return []
        sizes = np.bincount(self.codes)
        rows = np.flatnonzero(sizes[self.codes] >= min_size)
        if not len(rows):
            return []
        # Sort by (first row of the key, row): groups come out in order of first appearance.
        rows = rows[np.argsort(self.duplicate_of[rows], kind="stable")]
        bounds = np.flatnonzero(np.diff(self.duplicate_of[rows])) + 1
        return np.split(rows, bounds)


def exact_duplicate_groups(keys: KeyColumn, *, normalize: bool = True) -> ExactDuplicates:
    """Group rows with equal keys (texts after :func:`normalize_text` by default).

    Args:
        keys: one key per row: strings (pandas, Arrow, NumPy or a list) or any hashable values.
        normalize: compare strings after :func:`normalize_text`; other values are compared as they are.

    Returns:
        The groups, with the first occurrence of each key marked as kept.

    Example:
        >>> exact_duplicate_groups(["a b", "A  b", "c"]).keep.tolist()
        [True, False, True]
    """
    codes, keep = _exact_codes(keys, normalize=normalize)
    first_rows = np.flatnonzero(keep)
    first_row_of_code = np.empty(int(codes.max(initial=-1)) + 1, dtype=np.int64)
    first_row_of_code[codes[first_rows]] = first_rows
    return ExactDuplicates(codes=codes, keep=keep, duplicate_of=first_row_of_code[codes])


def drop_exact_duplicates(frame: pd.DataFrame, column: str, *, normalize: bool = True) -> pd.DataFrame:
    """Rows of ``frame`` without later copies of an equal ``column`` value (first kept, order and index kept).

    Args:
        frame: the table.
        column: the key column (usually the text).
        normalize: compare texts after :func:`normalize_text`.

    Raises:
        DataError: the column does not exist.
    """
    if column not in frame.columns:
        raise DataError(f"no column {column!r} to deduplicate on (columns: {', '.join(map(str, frame.columns))})")
    return frame.iloc[np.flatnonzero(_exact_keep(frame[column], normalize=normalize))]


@dataclass(frozen=True)
class LabelConflict:
    """Rows that share one (normalised) input but not one label.

    Attributes:
        rows: row indices, ascending.
        label_counts: rows per label, most frequent first (ties in order of first appearance).
    """

    rows: np.ndarray
    label_counts: dict[Any, int]


def conflicting_duplicates(inputs: KeyColumn, labels: KeyColumn, *, normalize: bool = True) -> list[LabelConflict]:
    """Groups of rows with the same input but different labels (missing labels are ignored).

    Args:
        inputs: the input key per row (text, or any hashable value).
        labels: the label per row.
        normalize: compare texts after :func:`normalize_text`.

    Returns:
        One :class:`LabelConflict` per conflicting input, ordered by first row.

    Raises:
        DataError: ``inputs`` and ``labels`` differ in length.
    """
    label_values = labels.reset_index(drop=True) if isinstance(labels, pd.Series) else pd.Series(_as_list(labels))
    duplicates = exact_duplicate_groups(inputs, normalize=normalize)
    if len(label_values) != duplicates.num_rows:
        raise DataError(f"conflicting_duplicates: {duplicates.num_rows} inputs but {len(label_values)} labels")
    label_codes, uniques = pd.factorize(label_values, use_na_sentinel=True)
    labelled = np.flatnonzero(label_codes >= 0)
    # Distinct (input, label) pairs, then inputs seen with two or more labels.
    pairs = np.unique(duplicates.codes[labelled] * (len(uniques) + 1) + label_codes[labelled])
    labels_per_input = np.bincount(pairs // (len(uniques) + 1), minlength=int(duplicates.codes.max(initial=-1)) + 1)
    conflicted = labels_per_input[duplicates.codes] > 1
    conflicts = []
    for group in duplicates.groups():
        if not conflicted[group[0]]:
            continue
        counts = pd.Series(label_values.iloc[group]).value_counts(dropna=True, sort=True)
        conflicts.append(LabelConflict(rows=group, label_counts={_plain(k): int(v) for k, v in counts.items()}))
    return conflicts


def _plain(value: Any) -> Any:
    """NumPy scalars as Python values (for JSON reports)."""
    return value.item() if isinstance(value, np.generic) else value


def _exact_codes(keys: KeyColumn, *, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 group labels (in order of first appearance) and (N,) bool first-occurrence mask of the keys."""
    strings = _string_array(keys)
    if strings is None:
        values = [normalize_text(v) if normalize and isinstance(v, str) else v for v in _as_list(keys)]
        codes, _ = pd.factorize(pd.array(values, dtype=object), use_na_sentinel=False)
        codes = codes.astype(np.int64)
        return codes, _first_occurrences(codes)
    first_of = _first_rows(normalize_texts(strings) if normalize else strings)
    keep = first_of == np.arange(len(first_of))
    return (np.cumsum(keep) - 1)[first_of], keep


def _exact_keep(keys: KeyColumn, *, normalize: bool) -> np.ndarray:
    """(N,) bool first-occurrence mask of the keys."""
    strings = _string_array(keys)
    if strings is None:
        return _exact_codes(keys, normalize=normalize)[1]
    first_of = _first_rows(normalize_texts(strings) if normalize else strings)
    return first_of == np.arange(len(first_of))


def _string_array(keys: KeyColumn) -> pa.Array | pa.ChunkedArray | None:
    """The keys as an Arrow (large) string array, or None when they are not all strings."""
    if isinstance(keys, pa.ChunkedArray | pa.Array):
        arr = keys
    else:
        if isinstance(keys, pd.Series | pd.Index) and keys.dtype == object:
            keys = keys.to_numpy()
        try:
            arr = pa.array(keys, from_pandas=True) if not isinstance(keys, list) else pa.array(keys)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
    if pa.types.is_null(arr.type) and len(arr):
        return arr.cast(pa.large_string())
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_string_view(arr.type):
        return arr.cast(pa.large_string())
    return None


def _as_list(keys: KeyColumn) -> list[Any]:
    if isinstance(keys, pa.ChunkedArray | pa.Array):
        return keys.to_pylist()
    if isinstance(keys, pd.Series | pd.Index | np.ndarray):
        return list(keys.tolist())
    return list(keys)


def _first_occurrences(codes: np.ndarray) -> np.ndarray:
    """First-occurrence mask of codes numbered in order of first appearance (0, 1, 2, ...)."""
    keep = np.zeros(len(codes), dtype=bool)
    if len(codes):
        # A code is new exactly when it exceeds every code before it.
        seen = np.maximum.accumulate(codes)
        keep[0] = True
        keep[1:] = codes[1:] > seen[:-1]
    return keep


def _first_rows(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(N,) int64: for each row, the first row holding an equal string (missing values are equal).

    Each row's 64-bit hash has its low bits replaced by the row number, and one sort of these
    keys (NumPy's SIMD sort) lines up rows of equal hash, earliest row first. Every later row is
    then compared with the first row of its run, so a hash collision can never merge two
    different strings: the runs where a comparison fails are grouped again exactly.
    """
    n = len(strings)
    if not n:
        return np.zeros(0, dtype=np.int64)
    row_bits = np.uint64(max(1, (n - 1).bit_length()))
    keys = hash_strings(strings)
    keys >>= row_bits
    keys <<= row_bits
    keys |= np.arange(n, dtype=np.uint64)
    keys.sort()
    rows = (keys & ((np.uint64(1) << row_bits) - np.uint64(1))).view(np.int64)
    keys >>= row_bits
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    run_first = np.repeat(rows[starts], np.diff(np.r_[starts, n]))
    first_of = np.empty(n, dtype=np.int64)
    first_of[rows] = run_first
    later = np.flatnonzero(first_of != np.arange(n))
    same = _same_strings(strings, later, first_of[later])
    if not same.all():
        _regroup_exactly(strings, first_of, np.unique(first_of[later[~same]]))
    return first_of


def _same_strings(strings: pa.Array | pa.ChunkedArray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(K,) bool: ``strings[left[k]] == strings[right[k]]`` (two missing values are equal)."""
    if not len(left):
        return np.zeros(0, dtype=bool)
    left_values, right_values = strings.take(pa.array(left)), strings.take(pa.array(right))
    same = pc.fill_null(pc.equal(left_values, right_values), False).to_numpy(zero_copy_only=False)
    if strings.null_count:
        same |= (pc.is_null(left_values).to_numpy(zero_copy_only=False)
                 & pc.is_null(right_values).to_numpy(zero_copy_only=False))
    return same


def _regroup_exactly(strings: pa.Array | pa.ChunkedArray, first_of: np.ndarray, impure: np.ndarray) -> None:
    """Re-group, in place, the rows whose hash run (first row in ``impure``) holds more than one string.

    Equal strings hash alike, so they always share a run: grouping these rows by string alone is exact.
    """
    rows = np.flatnonzero(np.isin(first_of, impure))
    exact = pc.dictionary_encode(strings.take(pa.array(rows)), null_encoding="encode")
    if isinstance(exact, pa.ChunkedArray):
        exact = exact.combine_chunks()
    string_codes = exact.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = _first_occurrences(string_codes)  # dictionary codes count strings in order of first appearance
    first_of_code = rows[first]
    first_of[rows] = first_of_code[string_codes]


def hash_strings(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(N,) uint64 hash of each string (equal strings, equal hashes; missing values share one hash).

    Vectorised over all rows: step ``w`` mixes the ``w``-th 8-byte word of every string that
    long into its running hash, so the work is the total length / 8 NumPy element steps.
    Not a cryptographic hash, and not stable across modelyard versions: for grouping only.
    """
    if isinstance(strings, pa.ChunkedArray):
        parts = [hash_strings(chunk) for chunk in strings.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        raise DataError(f"hash_strings needs strings, not {strings.type}")
    n = len(strings)
    if not n:
        return np.zeros(0, dtype=np.uint64)
    data, starts, lengths = _string_buffers(strings)
    words = (lengths + 7) >> 3
    long_rows = np.flatnonzero(words > _MAX_VECTOR_WORDS)
    if not len(long_rows):
        hashes = _hash_short(data, starts, lengths, words)
    else:
        hashes = np.empty(n, dtype=np.uint64)
        short_rows = np.flatnonzero(words <= _MAX_VECTOR_WORDS)
        hashes[short_rows] = _hash_short(data, starts[short_rows], lengths[short_rows], words[short_rows])
        for row in long_rows.tolist():
            text = data[starts[row]:starts[row] + lengths[row]].tobytes()
            hashes[row] = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
    if strings.null_count:
        hashes[strings.is_null().to_numpy(zero_copy_only=False)] = _NULL_HASH
    return hashes


def _string_buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a (large) string array, and each row's start and length in them (zero-copy)."""
    _, offsets_buffer, data_buffer = strings.buffers()
    offset_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets: np.ndarray = np.frombuffer(offsets_buffer, dtype=offset_type)
    offsets = offsets[strings.offset:strings.offset + len(strings) + 1].astype(np.int64, copy=False)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, dtype=np.uint8)
    return data, offsets[:-1], offsets[1:] - offsets[:-1]


def _hash_short(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Hash strings of at most ``_MAX_VECTOR_WORDS`` words, ``data[start:start + length]`` each.

    Reads the bytes as aligned 8-byte words (zero-copy when the buffer is 8-byte aligned); the
    few strings whose last word would read past the buffer are hashed from a small padded copy.
    """
    hashes = np.empty(len(starts), dtype=np.uint64)
    if not len(starts):
        return hashes
    if data.ctypes.data % 8:  # not aligned: an aligned copy (Arrow's own buffers are aligned)
        data = np.concatenate([data, np.zeros(8, dtype=np.uint8)])[:len(data)]
    aligned = data[:len(data) // 8 * 8].view(np.uint64)
    # A string starting in word k reads words k .. k + words (the last one only in part).
    tail = (starts >> 3) + words >= len(aligned)
    if tail.any():
        rows = np.flatnonzero(tail)
        low = int(starts[rows].min()) // 8 * 8
        padded = np.zeros((len(data) - low) // 8 + 2, dtype=np.uint64)
        padded.view(np.uint8)[:len(data) - low] = data[low:]
        hashes[rows] = _hash_aligned(padded, starts[rows] - low, lengths[rows], words[rows])
        rows = np.flatnonzero(~tail)
        hashes[rows] = _hash_aligned(aligned, starts[rows], lengths[rows], words[rows])
    else:
        hashes[:] = _hash_aligned(aligned, starts, lengths, words)
    return splitmix_finalize(hashes)


def _hash_aligned(aligned: np.ndarray, starts: np.ndarray, lengths: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Unfinalised hash of each string, ``_HASH_BLOCK`` strings at a time (their bytes stay in cache)."""
    state = np.empty(len(starts), dtype=np.uint64)
    for block in range(0, len(starts), _HASH_BLOCK):
        part = slice(block, block + _HASH_BLOCK)
        state[part] = _hash_block(aligned, starts[part], lengths[part], words[part])
    return state


def _hash_block(aligned: np.ndarray, starts: np.ndarray, lengths: np.ndarray, words: np.ndarray) -> np.ndarray:
    """One block of :func:`_hash_aligned`: step ``w`` mixes every string's ``w``-th 8-byte word into its state.

    A string's ``w``-th word is ``aligned[k + w] >> 8j | aligned[k + w + 1] << (64 - 8j)`` for a string
    starting at byte ``8k + j``; the right word of one step is the left word of the next.
    """
    # Longest strings first, so the strings still going at step w are a prefix: views, not gathers.
    order = np.argsort(-words.astype(np.int16), kind="stable")  # radix sort on 16-bit keys
    starts, lengths = starts[order], lengths[order]
    word_index = starts >> 3
    right_shift = ((starts & 7) << 3).astype(np.uint64)
    left_shift = np.uint64(64) - right_shift  # NumPy defines a shift by 64 as giving 0 (C does not)
    # still_going[w] = strings with more than w words.
    still_going = (len(words) - np.cumsum(np.bincount(words, minlength=1))).tolist()
    state = lengths.astype(np.uint64) * _GOLDEN
    scratch = np.empty(len(starts), dtype=np.uint64)
    left = aligned[word_index]
    for step, active in enumerate(still_going):
        if not active:
            break
        index = word_index[:active]
        index += 1
        right = aligned[index]
        word, high = left[:active], scratch[:active]
        np.right_shift(word, right_shift[:active], out=word)
        np.left_shift(right, left_shift[:active], out=high)
        np.bitwise_or(word, high, out=word)
        # Strings whose last word this is (exactly step + 1 words) sit at the end of the prefix.
        ending = still_going[step + 1] if step + 1 < len(still_going) else 0
        word[ending:] &= _LOW_BYTES[lengths[ending:active] - 8 * step]
        x = state[:active]
        np.bitwise_xor(x, word, out=x)
        np.multiply(x, MIX1, out=x)
        np.right_shift(x, _TWENTY_NINE, out=high)
        np.bitwise_xor(x, high, out=x)
        left = right
    hashes = np.empty_like(state)
    hashes[order] = state
    return hashes


def splitmix_finalize(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place: every input bit flips about half of the output bits."""
    x ^= x >> np.uint64(30)
    x *= MIX1
    x ^= x >> np.uint64(27)
    x *= MIX2
    x ^= x >> np.uint64(31)
    return x
