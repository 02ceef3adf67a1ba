"""Near-duplicate texts and train/valid/test leakage: the public names in one place.

The work lives in three modules, by topic:

- :mod:`modelyard.data.minhash`: shingling and MinHash signatures;
- :mod:`modelyard.data.lsh`: LSH banding, candidate pairs verified by exact Jaccard, groups;
- :mod:`modelyard.data.leakage`: exact and near duplicates across splits.

    pairs = near_duplicate_pairs(texts, threshold=0.8)
    groups = near_duplicate_groups(texts).groups
    leaks = cross_split_duplicates({"train": tr, "valid": va, "test": te})
"""

from __future__ import annotations

from modelyard.data.leakage import SplitLeakage, cross_split_duplicates
from modelyard.data.lsh import NearDuplicateGroups, lsh_bands, near_duplicate_groups, near_duplicate_pairs
from modelyard.data.minhash import ShingleKind, minhash_signatures, shingle_hashes

__all__ = ["NearDuplicateGroups", "ShingleKind", "SplitLeakage", "cross_split_duplicates", "lsh_bands",
           "minhash_signatures", "near_duplicate_groups", "near_duplicate_pairs", "shingle_hashes"]
