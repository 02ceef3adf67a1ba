"""Data-parallel scaling: training samples/s with 1 process vs 2 processes (gloo, 127.0.0.1).

The same recipe and global batch, trained by ``yard train`` (1 process, all cores as
threads), ``yard train --nproc 2`` (cores split: threads per process = cores / 2, so the
cores are not oversubscribed) and, for reference, 1 process with 1 thread, in alternating
runs so machine drift hits all alike.
Samples/s = training rows × epochs / the training loop's wall time (rank 0's ``fit``; process
start, imports and the rendezvous are excluded and reported apart as launcher overhead).

Scaling efficiency = (samples/s with 2 processes) / (2 × samples/s with 1 process), against
both baselines (all threads, and one thread). On a
2-core CPU the honest expectation is below 1: one process already uses both cores for its
matmuls, so two processes only win when one process cannot keep both cores busy (small
ops, Python overhead), and gloo's all-reduce over TCP costs time on every step.

    python benchmarks/distributed_scaling.py           # full: wide MLP, 3 runs each, a few minutes
    python benchmarks/distributed_scaling.py --small   # one run each of a small MLP, CI
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECIPE = """\
version: 1
name: bench-ddp
seed: 1
task: classification
data:
  source: {{format: sklearn, name: breast_cancer}}
  split: {{valid: 0.1, test: 0.1, stratify: true}}
model:
  name: mlp
  params: {{hidden: {hidden}, dropout: 0.0}}
train:
  epochs: {epochs}
  batch_size: 64
  optimizer: {{name: adamw, lr: 1.0e-3}}
  device: cpu
  checkpoint: {{enabled: false}}
register: {{enabled: false}}
"""


def _train(recipe: Path, dataset: str | None, nproc: int, env: dict[str, str]) -> tuple[dict[str, Any], float, str]:
    cmd = [sys.executable, "-m", "modelyard.cli.__main__", "train", str(recipe)]
    if dataset:
        cmd += ["--dataset", dataset]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"yard train failed: {proc.stderr[-2000:]}")
    from modelyard.store import open_store

    with open_store(env["YARD_HOME"]) as store:
        run = store.runs.list(kind="train")[0]
        data_id = next(a for a, kind in store.runs.artifacts(run["id"], role="input") if kind == "dataset")
        rows = store.runs.get(store.runs.list(kind="data")[0]["id"])["summary"].get("rows/train")
    return {**run["summary"], "train_rows": rows}, wall, data_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="one quick run each (CI)")
    args = parser.parse_args()
    repeats, hidden, epochs = (1, "[64, 64]", 1) if args.small else (3, "[1024, 1024]", 5)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "bench.yaml"
        recipe.write_text(RECIPE.format(hidden=hidden, epochs=epochs))
        env = {**os.environ, "YARD_HOME": str(Path(tmp) / "home")}
        # (processes, threads per process): 1×all cores is the baseline, 2×(cores/2) the contender,
        # 1×1 shows how much a single thread does (the per-process work when nothing is shared).
        configs = [(1, cores), (2, max(1, cores // 2)), (1, 1)]
        results: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
        overhead: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
        dataset = None
        for _ in range(repeats):
            for nproc, threads in configs:
                summary, wall, dataset = _train(recipe, dataset, nproc, {**env, "OMP_NUM_THREADS": str(threads)})
                samples = summary["train_rows"] * epochs
                results[(nproc, threads)].append(samples / summary["wall_seconds"])
                overhead[(nproc, threads)].append(wall - summary["wall_seconds"])
    one, two = statistics.median(results[configs[0]]), statistics.median(results[configs[1]])
    single = statistics.median(results[configs[2]])
    print(json.dumps({"benchmark": "distributed_scaling", "mode": "small" if args.small else "full",
                      "cores": cores, "model_hidden": hidden, "epochs": epochs, "repeats": repeats,
                      "samples_per_s_1proc": round(one, 1), "samples_per_s_2proc": round(two, 1),
                      "speedup": round(two / one, 3), "scaling_efficiency": round(two / (2 * one), 3),
                      "samples_per_s_1proc_1thread": round(single, 1),
                      # per-process efficiency: 2 one-thread processes against 2 × one one-thread process
                      "scaling_efficiency_vs_1thread": round(two / (2 * single), 3),
                      "process_overhead_s_1proc": round(statistics.median(overhead[configs[0]]), 1),
                      "process_overhead_s_2proc": round(statistics.median(overhead[configs[1]]), 1),
                      "runs": {f"{p}x{t}": [round(v, 1) for v in results[(p, t)]] for p, t in configs}}))


if __name__ == "__main__":
    main()
