"""Peak memory of `yard data prepare` on a CSV larger than it should hold, next to pandas in memory.

Generates a CSV of the given size in a temp folder (numeric features, a categorical
column, an id, a 5-class label, 1% exact duplicate rows), then runs, each in its own
process so its peak RSS is its own:

- ``yard``: ``yard data prepare`` (streaming: validation, cleaning, exact dedup, stratified
  split, Parquet per split, preprocessor fitted on train);
- ``pandas``: the in-memory baseline — ``read_csv`` + ``drop_duplicates`` + a stratified
  ``train_test_split`` + ``to_parquet``.

Prints one JSON line: file size, rows, peak RSS and wall time of each, rows/s, and the
ratio of yard's peak RSS to the file size. The file is deleted afterwards.

    python benchmarks/data_large_csv.py --small      # ~50 MB, CI
    python benchmarks/data_large_csv.py              # 2 GB (the issue's bar: peak RSS < 2 GB)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

# Runs a command and prints the peak RSS (KiB on Linux) of its process tree's largest process.
_MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")

_BASELINE = """
import sys
import pandas as pd
from sklearn.model_selection import train_test_split
frame = pd.read_csv(sys.argv[1]).drop_duplicates(subset=[c for c in pd.read_csv(sys.argv[1], nrows=1).columns
                                                          if c != "id"])
rest, test = train_test_split(frame, test_size=0.1, stratify=frame["label"], random_state=0)
train, valid = train_test_split(rest, test_size=len(test), stratify=rest["label"], random_state=0)
for name, part in (("train", train), ("valid", valid), ("test", test)):
    part.to_parquet(f"{sys.argv[2]}/{name}.parquet")
"""


def generate(path: Path, size_mb: float, seed: int = 0) -> int:
    """Write a CSV of about ``size_mb`` MB; returns its row count."""
    rng = np.random.default_rng(seed)
    batch, rows, written = 500_000, 0, 0
    target = size_mb * 1e6
    cities = np.array(["Paris", "Lyon", "Nice", "Lille", "Nantes", "Brest", "Metz", "Dijon", "Tours", "Caen"])
    with pa.OSFile(str(path), "wb") as sink:
        writer = None
        while written < target:
            n = batch
            columns = {"id": pa.array(np.arange(rows, rows + n))}
            for j in range(8):
                columns[f"f{j}"] = pa.array(np.round(rng.normal(j, 1 + j, n), 4))
            columns["city"] = pa.array(cities[rng.integers(0, len(cities), n)])
            columns["label"] = pa.array(rng.choice(["a", "b", "c", "d", "e"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05]))
            table = pa.table(columns)
            dup = rng.choice(n, n // 100, replace=False)  # 1% rows repeat an earlier row's values (new id)
            src = rng.choice(n, n // 100, replace=False)
            frame = table.to_pandas()
            frame.iloc[dup, 1:] = frame.iloc[src, 1:].to_numpy()
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pacsv.CSVWriter(sink, table.schema)
            writer.write_table(table)
            rows += n
            written = sink.tell()
        assert writer is not None
        writer.close()
    return rows


def measured(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``command``."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, env=env,
                          cwd=cwd, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    return int(done.stdout.strip().splitlines()[-1]) / 1024.0, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a ~50 MB file (CI)")
    parser.add_argument("--size-mb", type=float, default=None, help="file size in MB (default 2000, small 50)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pandas baseline")
    args = parser.parse_args()
    size_mb = args.size_mb or (50.0 if args.small else 2000.0)
    folder = Path(tempfile.mkdtemp(prefix="yard-bench-csv-"))
    try:
        csv = folder / "big.csv"
        rows = generate(csv, size_mb)
        file_mb = csv.stat().st_size / 1e6
        recipe = {"version": 1, "name": "large-csv", "task": "classification", "seed": 0, "model": {"name": "mlp"},
                  "data": {"source": {"format": "csv", "path": str(csv)}, "columns": {"label": "label", "id": "id"},
                           "split": {"valid": 0.1, "test": 0.1}}}
        (folder / "recipe.json").write_text(json.dumps(recipe))
        env = {**os.environ, "YARD_HOME": str(folder / "store")}
        yard_rss, yard_wall = measured([sys.executable, "-m", "modelyard.cli.__main__", "data", "prepare",
                                        str(folder / "recipe.json"), "--json"], env, folder)
        figures = {"benchmark": "data_large_csv", "file_mb": round(file_mb, 1), "rows": rows,
                   "yard_peak_rss_mb": round(yard_rss, 1), "yard_wall_s": round(yard_wall, 1),
                   "yard_rows_per_s": round(rows / yard_wall), "yard_rss_over_file": round(yard_rss / file_mb, 3)}
        if not args.no_baseline:
            (folder / "pandas").mkdir()
            base_rss, base_wall = measured([sys.executable, "-c", _BASELINE, str(csv), str(folder / "pandas")], env,
                                           folder)
            figures.update(pandas_peak_rss_mb=round(base_rss, 1), pandas_wall_s=round(base_wall, 1),
                           rss_ratio_yard_over_pandas=round(yard_rss / base_rss, 3))
        print(json.dumps(figures))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
