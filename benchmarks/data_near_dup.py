"""Near-duplicate texts: modelyard's ``near_duplicate_pairs`` vs datasketch's ``MinHashLSH`` used directly.

Generates N texts (random sentences of 10–25 words from a 50 000-word vocabulary) and
plants near-duplicates: 10% of the texts get a copy with one or two small edits (a word
replaced, inserted or deleted, a typo), so planted pairs spread over Jaccard 0.6–1.0 of
character 5-gram sets. Both sides use the same shingles (character 5-grams of the
normalised text), 128 permutations and threshold 0.8:

- ``ours``: :func:`modelyard.data.near_dup.near_duplicate_pairs` (vectorised MinHash, LSH,
  every candidate verified with the exact Jaccard similarity);
- ``datasketch``: ``MinHash.bulk`` + ``MinHashLSH`` (insertion session) + one ``query`` per
  text, its candidate pairs taken as they come (datasketch does not verify them).

Truth: every pair either side reports, plus every planted pair, checked with the exact
Jaccard similarity (random sentences of this vocabulary share no 5-gram sets near 0.8,
so no unplanted pair is missed by the truth). Recall is over true pairs (J ≥ 0.8),
precision over reported pairs. Prints one JSON line (goals: recall ≥ 0.95, precision
≥ 0.95, speed ≥ 1× datasketch). The two sides run alternately in this one process.

    python benchmarks/data_near_dup.py            # 100k texts, 3 rounds
    python benchmarks/data_near_dup.py --small    # 10k texts, 1 round (CI)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from modelyard.data.dedup import normalize_text
from modelyard.data.lsh import MIN_RECALL
from modelyard.data.near_dup import lsh_bands, near_duplicate_pairs

THRESHOLD, NUM_PERM, K = 0.8, 128, 5


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """``n`` texts and the planted (original, copy) pairs among them."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = ["".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(50_000)]
    texts: list[str] = []
    planted: list[tuple[int, int]] = []
    while len(texts) < n:
        words = [vocabulary[i] for i in rng.integers(0, len(vocabulary), rng.integers(10, 26))]
        texts.append(" ".join(words))
        if rng.random() < 0.1 and len(texts) < n:
            copy = list(words)
            for _ in range(rng.integers(1, 3)):
                edit, at = rng.integers(0, 4), int(rng.integers(0, len(copy)))
                if edit == 0:
                    copy[at] = vocabulary[int(rng.integers(0, len(vocabulary)))]
                elif edit == 1:
                    copy.insert(at, vocabulary[int(rng.integers(0, len(vocabulary)))])
                elif edit == 2 and len(copy) > 5:
                    del copy[at]
                else:
                    word = copy[at]
                    pos = int(rng.integers(0, len(word)))
                    copy[at] = word[:pos] + str(rng.choice(letters)) + word[pos + 1:]
            planted.append((len(texts) - 1, len(texts)))
            texts.append(" ".join(copy))
    order = rng.permutation(len(texts))  # scatter the copies
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    return [texts[i] for i in order], [(int(min(where[a], where[b])), int(max(where[a], where[b])))
                                       for a, b in planted]


def shingles(text: str) -> set[str]:
    text = normalize_text(text)
    return {text[i:i + K] for i in range(max(1, len(text) - K + 1))} if text else set()


def ours(texts: list[str]) -> set[tuple[int, int]]:
    pairs = near_duplicate_pairs(texts, threshold=THRESHOLD, num_perm=NUM_PERM, shingle_size=K)
    return set(zip(pairs["left"].tolist(), pairs["right"].tolist()))


def datasketch(texts: list[str]) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    sets = [[s.encode("utf-8") for s in shingles(t)] for t in texts]
    hashes = MinHash.bulk(sets, num_perm=NUM_PERM, seed=1)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for i, m in enumerate(hashes):
            session.insert(i, m, check_duplication=False)
    found: set[tuple[int, int]] = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j != i:
                found.add((min(i, j), max(i, j)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="10k texts, 1 round (CI)")
    parser.add_argument("--texts", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n = args.texts or (10_000 if args.small else 100_000)
    rounds = args.rounds or (1 if args.small else 3)
    texts, planted = corpus(n)
    walls: dict[str, list[float]] = {"ours": [], "datasketch": []}
    found: dict[str, set[tuple[int, int]]] = {}
    for _ in range(rounds):
        for name, method in (("ours", ours), ("datasketch", datasketch)):
            started = time.perf_counter()
            found[name] = method(texts)
            walls[name].append(time.perf_counter() - started)
    # Exact Jaccard of every pair anyone reported, and of the planted ones.
    cache: dict[int, set[str]] = {}

    def jaccard(pair: tuple[int, int]) -> float:
        a, b = (cache.setdefault(i, shingles(texts[i])) for i in pair)
        return len(a & b) / len(a | b) if a and b else 0.0

    checked = {p: jaccard(p) for p in set(planted) | found["ours"] | found["datasketch"]}
    truth = {p for p, s in checked.items() if s >= THRESHOLD}
    figures: dict[str, object] = {"benchmark": "data_near_dup", "texts": n, "rounds": rounds,
                                  "planted_pairs": len(planted), "true_pairs": len(truth),
                                  "planted_jaccard_quartiles": [round(float(q), 3) for q in
                                                                np.quantile([checked[p] for p in planted],
                                                                            [0.25, 0.5, 0.75])],
                                  # near_duplicate_pairs' default banding: (bands, rows per band)
                                  "ours_banding": list(lsh_bands(THRESHOLD, NUM_PERM, false_negative_weight=0.9,
                                                                 min_recall=MIN_RECALL))}
    for name in walls:
        got = found[name]
        figures[f"{name}_wall_s"] = round(statistics.median(walls[name]), 3)
        figures[f"{name}_recall"] = round(len(got & truth) / max(1, len(truth)), 4)
        figures[f"{name}_precision"] = round(len(got & truth) / max(1, len(got)), 4)
        figures[f"{name}_pairs"] = len(got)
    figures["speedup_ours_over_datasketch"] = round(statistics.median(walls["datasketch"])
                                                    / statistics.median(walls["ours"]), 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
