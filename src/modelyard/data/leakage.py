"""Train/valid/test leakage: rows of later splits that are exact or near duplicates of earlier ones.

Exact copies are found after normalisation (:func:`modelyard.data.dedup.exact_duplicate_groups`),
near duplicates with the verified MinHash LSH of :mod:`modelyard.data.lsh`, skipping candidate
pairs whose rows all sit in one split.

    leaks = cross_split_duplicates({"train": tr, "valid": va, "test": te})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.core.errors import ConfigError
from modelyard.data.dedup import KeyColumn, exact_duplicate_groups, normalize_texts
from modelyard.data.lsh import MIN_RECALL, expand_pairs, members_by_representative, near_candidates
from modelyard.data.minhash import ShingleKind


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
                           seed: int = 0, false_negative_weight: float = 0.9,
                           min_recall: float = MIN_RECALL) -> SplitLeakage:
    """Leakage: rows of later splits that are exact or near duplicates of rows of earlier splits.

    Splits are ranked in the mapping's order (e.g. train > valid > test): a valid row is
    checked against train, a test row against train and valid. Duplicates inside one split
    are not leakage (that is :func:`exact_duplicate_groups`). Remove the flagged rows from the
    evaluation splits; a test row matching a valid row stays flagged even when that valid row
    is itself removed.

    Args:
        splits: split name -> texts, in rank order.
        near_threshold: Jaccard threshold for near duplicates; None checks exact copies only.
        num_perm, shingle, shingle_size, seed, false_negative_weight, min_recall: as in
            :func:`~modelyard.data.lsh.near_duplicate_pairs`.

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
                                   shingle_size=shingle_size, seed=seed, false_negative_weight=false_negative_weight,
                                   min_recall=min_recall)
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
    found = near_candidates(texts, split_of=split_of, **near)  # type: ignore[arg-type]
    left, right, similarity = expand_pairs(found, members_by_representative(found.duplicate_of, found.has_shingles))
    different = split_of[left] != split_of[right]
    return pd.DataFrame({"left": left[different], "right": right[different], "jaccard": similarity[different]})


__all__ = ["SplitLeakage", "cross_split_duplicates"]
