"""Exact deduplication of short text rows: modelyard's ``drop_exact_duplicates`` vs pandas ``drop_duplicates``.

Generates N short texts (3–8 words from a 20 000-word vocabulary, about 30% of rows
repeating an earlier row), then times, in alternating fresh processes so each peak RSS is
its own and machine drift hits both alike:

- ``ours``: :func:`modelyard.data.dedup.drop_exact_duplicates` (``normalize=False``, the same
  question pandas answers) and, as an extra figure, with ``normalize=True`` (NFKC + casefold
  + whitespace, what the data stage does);
- ``pandas``: ``DataFrame.drop_duplicates(subset="text")``;

each on an ``object`` column (what ``read_csv`` returns with pandas 2, or with
``dtype=object``) and on a ``str`` column (Arrow-backed: what ``read_csv`` returns by
default with pandas 3 and pyarrow installed), with new string objects before every timed
call (Python caches a string's hash, which would flatter pandas on repeated calls).

The headline, ``speedup_read_csv``, is the ratio on the dtype that this pandas's
``read_csv`` gives a text column by default (``read_csv_dtype``, found by reading a small
CSV); both ratios are printed as well. Both sides must keep exactly the same rows
(checked). Prints one JSON line: medians of wall time, rows/s, peak RSS above the
process's RSS before the call, and the speed ratios (goal ≥ 2×). Each process times the
median of 5 calls after a first call that measures the peak.

    python benchmarks/data_dedup.py            # 1M rows, 3 rounds
    python benchmarks/data_dedup.py --small    # 100k rows (CI)
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import pandas as pd

_REPEATS = 5


def texts(rows: int, seed: int = 0) -> pd.DataFrame:
    """Short texts with about 30% exact repeats, and a label column."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = np.array(["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(20_000)])
    unique = int(rows * 0.7)
    lengths = rng.integers(3, 9, unique)
    words = vocabulary[rng.integers(0, len(vocabulary), int(lengths.sum()))]
    bounds = np.r_[0, np.cumsum(lengths)]
    base = [" ".join(words[bounds[i]:bounds[i + 1]]) for i in range(unique)]
    picks = np.r_[np.arange(unique), rng.integers(0, unique, rows - unique)]
    rng.shuffle(picks)
    return pd.DataFrame({"text": np.array(base, dtype=object)[picks], "label": rng.integers(0, 5, rows)})


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 1e6


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS, so the peak measured is the call's."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:  # not Linux, or not allowed: the peak then includes generating the data
        pass


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1e3
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KiB on Linux


def fresh(frame: pd.DataFrame, dtype: str) -> pd.DataFrame:
    """A copy with new string objects: Python caches a str's hash, so re-used strings would flatter pandas."""
    return frame.assign(text=pd.Series([s.encode().decode() for s in frame["text"]], dtype=dtype,
                                       index=frame.index))


def read_csv_dtype() -> str:
    """``object`` or ``str``: the dtype this pandas's ``read_csv`` gives a text column by default."""
    column = pd.read_csv(io.StringIO("text\nhello world\nbye\n"))["text"]
    return "object" if column.dtype == object else "str"


def worker(kind: str, rows: int) -> None:
    """Time one method on one column dtype in this fresh process; print its figures as JSON."""
    from modelyard.data.dedup import drop_exact_duplicates

    method, dtype = kind.split(":")
    base = texts(rows)

    def call(frame: pd.DataFrame) -> pd.DataFrame:
        if method == "pandas":
            return frame.drop_duplicates(subset="text")
        return drop_exact_duplicates(frame, "text", normalize=method == "ours-normalized")

    frame = fresh(base, dtype)
    before = _rss_mb()
    _reset_peak()
    kept = call(frame)
    peak = _peak_mb()
    walls = []
    for _ in range(_REPEATS):  # the median of a few calls: one call is at the mercy of the scheduler
        frame = fresh(base, dtype)
        started = time.perf_counter()
        call(frame)
        walls.append(time.perf_counter() - started)
    wall = statistics.median(walls)
    digest = int(pd.util.hash_pandas_object(kept.index.to_series(), index=False).sum() % (1 << 61))
    print(json.dumps({"wall": wall, "peak_over_start_mb": max(peak - before, 0.0), "kept": len(kept),
                      "digest": digest}))


def run(method: str, rows: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--worker", method, "--rows", str(rows)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100k rows (CI)")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.small else 1_000_000)
    if args.worker:
        worker(args.worker, rows)
        return
    rounds = args.rounds or 3
    kinds = ["ours:object", "pandas:object", "ours:str", "pandas:str", "ours-normalized:str"]
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind in kinds:
            results[kind].append(run(kind, rows))
    kept = {(r[0]["digest"], r[0]["kept"]) for kind, r in results.items() if not kind.startswith("ours-normalized")}
    if len(kept) != 1:
        raise SystemExit("modelyard and pandas kept different rows")

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    csv_dtype = read_csv_dtype()
    figures: dict[str, object] = {"benchmark": "data_dedup", "rows": rows, "rounds": rounds,
                                  "kept": int(results["ours:str"][0]["kept"]), "pandas": pd.__version__,
                                  "read_csv_dtype": csv_dtype}
    for kind in kinds:
        name = kind.replace(":", "_")
        wall = median(kind, "wall")
        figures[f"{name}_wall_s"] = round(wall, 4)
        figures[f"{name}_rows_per_s"] = round(rows / wall)
        figures[f"{name}_peak_rss_over_start_mb"] = round(median(kind, "peak_over_start_mb"), 1)
    for dtype in ("object", "str"):
        figures[f"speedup_ours_over_pandas_{dtype}"] = round(median(f"pandas:{dtype}", "wall")
                                                             / median(f"ours:{dtype}", "wall"), 3)
    figures["speedup_read_csv"] = figures[f"speedup_ours_over_pandas_{csv_dtype}"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
