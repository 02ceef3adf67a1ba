"""Search efficiency: grid vs random vs TPE + median pruning on digits + cnn, in one process.

For each strategy: the training steps (summed over its trials in the order they ran,
pruned trials counted for the steps they did run) needed to first reach grid's best
validation accuracy within 0.5 point. Grid's own figure is the mean over random orders of
its points (how soon one grid run meets its best is luck of its order); its whole-grid
total is reported too. Goal: TPE + pruning needs <= 40% of grid's steps.
Also the tuner's own overhead: the share of search wall time spent outside ``train.run``
(sampling, storage, run bookkeeping, dataset loading). Goal: <= 5%.

Random and TPE are stochastic, so the full mode repeats them over seeds and reports medians.

    python benchmarks/tune_efficiency.py           # full: ~10 minutes on 2 cores
    python benchmarks/tune_efficiency.py --small   # < 60 s, CI
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
from typing import Any

import yaml

from modelyard import data as data_stage
from modelyard import tune as tune_stage
from modelyard.config import validate_recipe
from modelyard.store import open_store
from modelyard.store.context import stage_run

BASE = """\
version: 1
name: bench-digits
seed: 7
task: classification
data:
  source: {format: sklearn, name: digits}
  split: {valid: 0.15, test: 0.2}
model:
  name: cnn
  params: {channels: [16, 32], dropout: 0.1}
train:
  batch_size: 64
  optimizer: {name: adamw, lr: 3.0e-3, weight_decay: 0.01}
  schedule: {name: cosine, warmup: 0.05}
"""

TOLERANCE = 0.005  # "within 0.5 point" of accuracy


def sizes(small: bool) -> dict[str, Any]:
    """Grid values and budgets of each mode."""
    if small:
        return {"epochs": 3, "seeds": [0], "lr": [1e-3, 1e-2], "channels": [[8, 16]], "dropout": [0.1],
                "weight_decay": [1e-4, 1e-2]}
    # Few epochs and a wide learning-rate range, so that configs really differ and grid's best is rare.
    return {"epochs": 4, "seeds": [0, 1, 2], "lr": [1e-4, 1e-3, 1e-2, 3e-2],
            "channels": [[8, 16], [16, 32], [32, 64]], "dropout": [0.0, 0.5], "weight_decay": [1e-4, 1e-1]}


def grid_space(s: dict[str, Any]) -> dict[str, Any]:
    """The grid: every dimension as a categorical list."""
    return {"train.optimizer.lr": {"type": "categorical", "choices": s["lr"]},
            "model.params.channels": {"type": "categorical", "choices": s["channels"]},
            "model.params.dropout": {"type": "categorical", "choices": s["dropout"]},
            "train.optimizer.weight_decay": {"type": "categorical", "choices": s["weight_decay"]}}


def continuous_space(s: dict[str, Any]) -> dict[str, Any]:
    """The same region as the grid, continuous where the grid is sampled."""
    space: dict[str, Any] = {
        "train.optimizer.lr": {"type": "float", "low": min(s["lr"]), "high": max(s["lr"]), "log": True},
        "model.params.channels": {"type": "categorical", "choices": s["channels"]},
        "train.optimizer.weight_decay": {"type": "float", "low": min(s["weight_decay"]),
                                         "high": max(s["weight_decay"]), "log": True}}
    if len(s["dropout"]) > 1:
        space["model.params.dropout"] = {"type": "float", "low": min(s["dropout"]), "high": max(s["dropout"])}
    return space


def search(store: Any, dataset: Any, s: dict[str, Any], *, name: str, tune: dict[str, Any]) -> dict[str, Any]:
    """One search; returns its trials (in order), best value and overhead."""
    raw = yaml.safe_load(BASE)
    raw["train"]["epochs"] = s["epochs"]
    raw["tune"] = {"study_name": name, **tune}
    recipe = validate_recipe(raw, source=name)
    started = time.perf_counter()
    with stage_run(store, kind="tune", name=name, config={}) as ctx:
        result = tune_stage.run(recipe, dataset, ctx=ctx)
    return {"trials": result.trials, "best": result.best_value, "wall_s": time.perf_counter() - started,
            "overhead": result.overhead["overhead_fraction"]}


def steps_to_reach(trials: list[dict[str, Any]], target: float) -> int | None:
    """Training steps summed over trials (in order) until one reaches ``target`` (None: never)."""
    total = 0
    for row in sorted(trials, key=lambda r: r["number"]):
        total += int(row.get("steps") or 0)
        if row["state"] == "complete" and row["value"] is not None and row["value"] >= target:
            return total
    return None


def expected_steps_to_reach(trials: list[dict[str, Any]], target: float, *, orders: int = 2000) -> float:
    """Mean of :func:`steps_to_reach` over random orders of the same trials.

    A grid search visits its points in some order; how soon it meets its best is luck of that
    order. The mean over orders is grid's fair figure.
    """
    rng = random.Random(0)
    rows = [(int(r.get("steps") or 0), r["state"] == "complete" and r["value"] is not None and r["value"] >= target)
            for r in trials]
    totals = []
    for _ in range(orders):
        rng.shuffle(rows)
        total = 0
        for steps, hit in rows:
            total += steps
            if hit:
                break
        totals.append(total)
    return statistics.fmean(totals)


def main() -> None:
    """Run the three strategies and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny grid and budgets (< 60 s)")
    args = parser.parse_args()
    s = sizes(args.small)
    grid_points = len(s["lr"]) * len(s["channels"]) * len(s["dropout"]) * len(s["weight_decay"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, open_store(folder) as store:
        raw = yaml.safe_load(BASE)
        with stage_run(store, kind="data", name="bench", config={}) as ctx:
            dataset = data_stage.run(validate_recipe(raw), ctx=ctx)
        grid = search(store, dataset, s, name="grid", tune={
            "sampler": "grid", "pruner": "none", "n_trials": grid_points, "space": grid_space(s)})
        target = grid["best"] - TOLERANCE
        grid_steps = expected_steps_to_reach(grid["trials"], target)
        runs: dict[str, list[dict[str, Any]]] = {"random": [], "tpe_median": []}
        for seed in s["seeds"]:
            runs["random"].append(search(store, dataset, s, name=f"random-{seed}", tune={
                "sampler": "random", "pruner": "none", "n_trials": grid_points, "seed": seed,
                "space": continuous_space(s)}))
            runs["tpe_median"].append(search(store, dataset, s, name=f"tpe-{seed}", tune={
                "sampler": "tpe", "pruner": "median", "n_trials": grid_points, "seed": seed,
                "startup_trials": max(2, grid_points // 12), "warmup_steps": max(1, s["epochs"] // 3),
                "space": continuous_space(s)}))

    grid_total = sum(int(t.get("steps") or 0) for t in grid["trials"])

    def summary(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
        reached = [steps_to_reach(r["trials"], target) for r in results]
        got = [x for x in reached if x is not None]
        median_steps = statistics.median(got) if len(got) == len(reached) else None
        return {f"{name}_steps_to_grid_best": reached,
                f"{name}_median_steps": median_steps,
                f"{name}_steps_ratio_vs_grid": round(median_steps / grid_steps, 3) if median_steps and grid_steps
                else None,
                f"{name}_steps_ratio_vs_grid_total": round(median_steps / grid_total, 3) if median_steps else None,
                f"{name}_best": [round(r["best"], 4) for r in results],
                f"{name}_total_steps": [sum(int(t.get("steps") or 0) for t in r["trials"]) for r in results],
                f"{name}_pruned": [sum(t["state"] == "pruned" for t in r["trials"]) for r in results],
                f"{name}_overhead_median": round(statistics.median(r["overhead"] for r in results), 4)}

    figures: dict[str, Any] = {
        "benchmark": "tune_efficiency", "mode": "small" if args.small else "full", "task": "digits+cnn",
        "epochs_per_trial": s["epochs"], "trials_per_search": grid_points, "seeds": s["seeds"],
        "grid_best": round(grid["best"], 4), "target": round(target, 4),
        "grid_steps_to_best_expected": round(grid_steps, 1),
        "grid_steps_to_best_run_order": steps_to_reach(grid["trials"], target),
        "grid_points_within_target": sum(t["state"] == "complete" and t["value"] >= target for t in grid["trials"]),
        "grid_total_steps": grid_total,
        "grid_overhead": round(grid["overhead"], 4),
        **summary("random", runs["random"]), **summary("tpe_median", runs["tpe_median"]),
        "goal_tpe_steps_ratio_le": 0.40, "goal_overhead_le": 0.05,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cores": len(os.sched_getaffinity(0)),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
