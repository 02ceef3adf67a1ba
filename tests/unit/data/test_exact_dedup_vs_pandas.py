"""Exact deduplication keeps exactly the rows pandas ``drop_duplicates`` keeps, on awkward texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.data import dedup
from modelyard.data.dedup import drop_exact_duplicates, exact_duplicate_groups, hash_strings

# Texts that tempt a hash or a byte-level comparison into mistakes: empty, whitespace only,
# lengths around the 8-byte word boundaries, a shared 8-byte prefix, NUL bytes (zero padding),
# multi-byte UTF-8, combining marks, long texts (hashed one by one), and equal-length
# neighbours that differ in one byte only.
_AWKWARD = ["", " ", "  ", "\x00", "\x00\x00", "a", "a\x00", "abcdefg", "abcdefgh", "abcdefgh\x00", "abcdefghi",
            "abcdefgh" * 2, "abcdefgh" * 2 + "x", "é", "e\u0301", "日本語テキスト", "🙂", "🙂🙂", "Ａ", "ß", "ss",
            "x" * 1024, "x" * 1023 + "y", "x" * 1025, "word " * 300]


def _frame(rows: int, seed: int, missing: object) -> pd.DataFrame:
    """``rows`` texts mixing the awkward ones, random short ones (many repeated) and ``missing`` values."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ab é日\x00"))
    pool = [*_AWKWARD, *("".join(rng.choice(letters, rng.integers(0, 20))) for _ in range(rows // 4))]
    picks = rng.integers(0, len(pool), rows)
    texts = np.array(pool, dtype=object)[picks]
    texts[rng.random(rows) < 0.02] = missing
    return pd.DataFrame({"text": texts, "label": rng.integers(0, 3, rows)}, index=np.arange(rows) * 3 + 7)


@pytest.mark.parametrize("dtype", ["object", "str"])
@pytest.mark.parametrize("missing", [None, np.nan])
@pytest.mark.parametrize("rows", [500, 100_000])  # 100k rows spread the hashes over several partitions
def test_drop_exact_duplicates_equals_pandas(dtype: str, missing: object, rows: int) -> None:
    frame = _frame(rows, seed=rows, missing=missing)
    frame["text"] = frame["text"].astype(dtype)
    expected = frame.drop_duplicates(subset="text")
    ours = drop_exact_duplicates(frame, "text", normalize=False)
    pd.testing.assert_frame_equal(ours, expected)
    groups = exact_duplicate_groups(frame["text"], normalize=False)
    assert groups.keep.tolist() == (~frame["text"].duplicated()).tolist()
    # Every row points at the first row of an equal text, and labels count texts by first appearance.
    values = frame["text"].tolist()
    firsts = [values[i] for i in groups.duplicate_of.tolist()]
    assert all(a == b or (pd.isna(a) and pd.isna(b)) for a, b in zip(values, firsts, strict=True))
    assert groups.codes.tolist() == pd.factorize(frame["text"], use_na_sentinel=False)[0].tolist()


def test_drop_exact_duplicates_equals_pandas_through_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 2-valued hash: every group is impure, so only the string check keeps the answer right.
    real = dedup.hash_strings
    monkeypatch.setattr(dedup, "hash_strings", lambda strings: real(strings) & np.uint64(1))
    frame = _frame(3000, seed=1, missing=None)
    pd.testing.assert_frame_equal(drop_exact_duplicates(frame, "text", normalize=False),
                                  frame.drop_duplicates(subset="text"))


def test_missing_values_are_one_key_even_where_pandas_keeps_none_and_nan_apart() -> None:
    # On an object column pandas keeps None and NaN apart; modelyard treats every missing value
    # as one key (as on pandas' own str columns, where both become NaN).
    frame = pd.DataFrame({"text": pd.Series(["a", None, np.nan, "a", None], dtype=object)})
    assert drop_exact_duplicates(frame, "text", normalize=False).index.tolist() == [0, 1]
    as_str = frame.astype({"text": "str"})
    assert as_str.drop_duplicates(subset="text").index.tolist() == [0, 1]


def test_hash_strings_reads_the_last_bytes_of_an_unpadded_buffer() -> None:
    # Strings ending at the very end of the data buffer (the words read past it are the tail case).
    for length in range(0, 40):
        values = ["q" * length, "r" * (length + 1), "q" * length]
        hashes = hash_strings(pa.array(values, type=pa.large_string()))
        assert hashes[0] == hashes[2] and hashes[0] != hashes[1]
