"""Shingling and MinHash signatures of texts (the first half of near-duplicate detection).

Each text (normalised by :func:`modelyard.data.dedup.normalize_texts`) becomes a set of
shingles: character ``k``-grams (default, robust for short texts) or word ``k``-grams, each
hashed to 64 bits. MinHash: permutation ``p`` maps a shingle's 32-bit key ``x`` to
``(a_p x + b_p) mod 2^64 >> 32`` (multiply-add-shift, a strongly universal family), and a
text's signature is the minimum over its shingles. All vectorised in NumPy (loops run over
shingle positions or chunks, never over texts × permutations). Banding the signatures into
candidate pairs is :mod:`modelyard.data.lsh`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.core.errors import ConfigError
from modelyard.data.dedup import MIX1, KeyColumn, hash_strings, normalize_texts, splitmix_finalize

ShingleKind = Literal["char", "word"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_EMPTY_SLOT = np.uint32(0xFFFFFFFF)  # signature value of a text without shingles
# Elements (shingles × permutations, or gathered set members) NumPy handles per chunk: 4M uint64 = 32 MB.
CHUNK_ELEMENTS = 1 << 22


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
    check_shingle(shingle, shingle_size)
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
        slots = concat_ranges(offsets[:-1][full], per_text[full])
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
    return signatures_of(values, offsets, *permutations(num_perm, seed))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiply-add-shift parameters: odd multipliers ``a`` and offsets ``b``, uint64."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def signatures_of(values: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash of each CSR segment of shingle hashes under the permutations (a, b)."""
    n, num_perm = len(offsets) - 1, len(a)
    signatures = np.full((num_perm, n), _EMPTY_SLOT, dtype=np.uint32)  # (P, N): reductions run along rows
    texts = np.flatnonzero(np.diff(offsets) > 0)
    keys = values >> np.uint64(32)
    # Chunks of whole texts holding about CHUNK_ELEMENTS shingle × permutation values.
    budget = max(CHUNK_ELEMENTS // num_perm, 1)
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


def concat_ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, start + size)`` over the runs (a CSR helper, shared with ``lsh``)."""
    total = int(sizes.sum())
    run_first = np.cumsum(sizes) - sizes
    return np.repeat(starts - run_first, sizes) + np.arange(total, dtype=np.int64)


def check_shingle(shingle: str, shingle_size: int) -> None:
    """Raise ConfigError unless ``shingle`` is known and ``shingle_size`` in 1..64."""
    if shingle not in ("char", "word"):
        raise ConfigError(f"unknown shingle {shingle!r} (known: char, word)")
    if not 1 <= shingle_size <= 64:
        raise ConfigError(f"shingle_size must be in 1..64, got {shingle_size}")


__all__ = ["ShingleKind", "minhash_signatures", "shingle_hashes"]
