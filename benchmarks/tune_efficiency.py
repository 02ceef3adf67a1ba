"""Search efficiency: grid vs random vs TPE + median pruning on digits + cnn, in one process.

What it measures. One 4-D search region (learning rate, widths, dropout, weight decay) is
searched three ways: an exhaustive grid (6 lr x 3 widths x 3 dropout x 3 weight decay =
162 points), random search, and TPE + median pruning over the continuous hull of the same
grid (same bounds, log scale where the grid is log-spaced). TPE without pruning runs too, to
separate the sampler's effect from the pruner's. The target is grid's best validation
accuracy minus 0.5 point. For each strategy the figure is the training steps (summed over
its trials in the order they ran, a pruned trial counted for the steps it did run) until
one trial first reaches the target. Grid's figure is the mean over random orders of its
points (how soon one grid run meets its best is luck of its order); its whole-grid total is
reported too. Random and TPE use the defaults a user gets (no startup or warmup overrides)
and are repeated over 10 seeds: the median and min..max are reported; a seed that never
reaches the target within grid's trial budget (162 trials) counts as a miss (worse than any
hit). Each random/TPE search runs in chunks of 8 trials on a resumed study and stops after
the first chunk that reaches the target: what runs after that cannot change the figure.
Goal: TPE + pruning needs <= 40% of grid's steps.

Diagnostics: how many grid points are within the target, and a replay of the grid's own
learning curves through the median-stopping rule (default settings, random orders): how
many trials, and how many within-target ones, the rule would have pruned.

Also the tuner's own overhead: the share of search wall time spent outside ``train.run``
(sampling, storage, run bookkeeping, importances, artifacts). Goal: <= 5%. The grid is one
uninterrupted search (the clean figure); the chunked searches pay the per-search costs once
per chunk, so theirs overstate it. The share grows as trials get shorter.

The step figures do not depend on machine load (runs are deterministic: a rerun reproduces
them); wall time and overhead do. ``OMP_NUM_THREADS=1`` makes the small CNN's trials several
times faster on a loaded 2-core machine without changing what is measured.

    OMP_NUM_THREADS=1 python benchmarks/tune_efficiency.py        # full: ~15 min on 2 cores
    python benchmarks/tune_efficiency.py --small                  # under a minute, CI
    python benchmarks/tune_efficiency.py --seeds 5                # fewer seeds (default 10)
    python benchmarks/tune_efficiency.py --dump trials.json       # also write every trial row
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
from pathlib import Path
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
# The defaults a user gets (TuneConfig.startup_trials / warmup_steps), for the pruning replay.
MEDIAN_STARTUP, MEDIAN_WARMUP = 5, 1


def sizes(small: bool) -> dict[str, Any]:
    """Grid values, seeds and chunking of each mode."""
    if small:
        return {"epochs": 3, "seeds": [0], "lr": [1e-3, 1e-2], "channels": [[8, 16]], "dropout": [0.1],
                "weight_decay": [1e-4, 1e-2], "chunk": 4}
    # A grid a user would write for 4 hyperparameters: half-decade learning rates over
    # 1e-4..3e-2, three widths, three dropouts, log-spaced weight decay over 1e-4..1e-1.
    # Few epochs, so that configs really differ.
    return {"epochs": 4, "seeds": list(range(10)), "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
            "channels": [[8, 16], [16, 32], [32, 64]], "dropout": [0.0, 0.25, 0.5],
            "weight_decay": [1e-4, 3e-3, 1e-1], "chunk": 8}


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


def search(store: Any, dataset: Any, s: dict[str, Any], *, name: str, tune: dict[str, Any],
           resume: bool = False) -> dict[str, Any]:
    """One search (or one more chunk of a resumed one); returns all its trials, best value and timings."""
    raw = yaml.safe_load(BASE)
    raw["train"]["epochs"] = s["epochs"]
    raw["tune"] = {"study_name": name, **tune}
    recipe = validate_recipe(raw, source=name)
    started = time.perf_counter()
    with stage_run(store, kind="tune", name=name, config={}) as ctx:
        result = tune_stage.run(recipe, dataset, ctx=ctx, resume=resume)
    return {"trials": result.trials, "best": result.best_value, "wall_s": time.perf_counter() - started,
            "search_s": result.overhead["search_seconds"], "train_s": result.overhead["train_seconds"],
            "overhead": result.overhead["overhead_fraction"]}


def search_until(store: Any, dataset: Any, s: dict[str, Any], *, name: str, tune: dict[str, Any],
                 target: float, budget: int) -> dict[str, Any]:
    """A search run in chunks of ``s['chunk']`` trials until a trial reaches ``target`` or ``budget`` trials ran.

    The study is resumed between chunks, so the sampler and pruner see every earlier trial
    as in one uninterrupted search (only the sampler's random stream is reseeded per chunk,
    as for any resumed study).
    """
    done, search_s, train_s = 0, 0.0, 0.0
    out: dict[str, Any] = {}
    while done < budget:
        done = min(budget, done + s["chunk"])
        out = search(store, dataset, s, name=name, tune={**tune, "n_trials": done}, resume=done > s["chunk"])
        search_s += out["search_s"]
        train_s += out["train_s"]
        if steps_to_reach(out["trials"], target) is not None:
            break
    out["overhead"] = max(0.0, 1.0 - train_s / max(search_s, 1e-9))
    return out


def reached(row: dict[str, Any], target: float) -> bool:
    """A complete trial whose value is at least ``target``."""
    return row["state"] == "complete" and row["value"] is not None and row["value"] >= target


def steps_to_reach(trials: list[dict[str, Any]], target: float) -> int | None:
    """Training steps summed over trials (in order) until one reaches ``target`` (None: never)."""
    total = 0
    for row in sorted(trials, key=lambda r: r["number"]):
        total += int(row.get("steps") or 0)
        if reached(row, target):
            return total
    return None


def trials_to_reach(trials: list[dict[str, Any]], target: float) -> int | None:
    """How many trials (in order) ran until one reached ``target`` (None: never)."""
    ordered = sorted(trials, key=lambda r: r["number"])
    return next((i + 1 for i, row in enumerate(ordered) if reached(row, target)), None)


def expected_steps_to_reach(trials: list[dict[str, Any]], target: float, *, orders: int = 2000) -> float:
    """Mean of :func:`steps_to_reach` over random orders of the same trials.

    A grid search visits its points in some order; how soon it meets its best is luck of that
    order. The mean over orders is grid's fair figure.
    """
    rng = random.Random(0)
    rows = [(int(r.get("steps") or 0), reached(r, target)) for r in trials]
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


def median_rule_prunes(trials: list[dict[str, Any]], target: float, *, startup: int, warmup: int,
                       orders: int = 500) -> dict[str, float]:
    """Replay the grid's learning curves through the median-stopping rule, in random orders.

    Optuna's rule: from the ``startup``-th complete trial on, a trial is stopped at a report
    ``step >= warmup`` when its best value so far is below the median of the complete
    trials' values at that step. Returns the mean number of trials it prunes and of
    within-target trials among them (per order).
    """
    rng = random.Random(1)
    curves = [([v for _, v in r["intermediate"]], reached(r, target)) for r in trials if r["intermediate"]]
    pruned, pruned_hits = [], []
    for _ in range(orders):
        rng.shuffle(curves)
        complete: list[list[float]] = []
        n_pruned = n_hits = 0
        for curve, hit in curves:
            stop = any(len(complete) >= startup and step >= warmup
                       and max(curve[:step]) < statistics.median(c[step - 1] for c in complete if len(c) >= step)
                       for step in range(1, len(curve)))
            if stop:
                n_pruned += 1
                n_hits += hit
            else:
                complete.append(curve)
        pruned.append(n_pruned)
        pruned_hits.append(n_hits)
    return {"pruned": round(statistics.fmean(pruned), 2),
            "pruned_within_target": round(statistics.fmean(pruned_hits), 2)}


def summary(name: str, results: list[dict[str, Any]], target: float, grid_steps: float,
            grid_total: int) -> dict[str, Any]:
    """Per-seed figures and their median / spread (a seed that misses counts as worse than any hit)."""
    reached_at = [steps_to_reach(r["trials"], target) for r in results]
    ranked = sorted(float("inf") if x is None else x for x in reached_at)
    median = statistics.median(ranked) if ranked else None
    median_steps = None if median is None or median == float("inf") else median
    return {f"{name}_steps_to_grid_best": reached_at,
            f"{name}_median_steps": median_steps,
            f"{name}_min_steps": None if ranked[0] == float("inf") else ranked[0],
            f"{name}_max_steps": None if ranked[-1] == float("inf") else ranked[-1],
            f"{name}_misses": sum(x is None for x in reached_at),
            f"{name}_steps_ratio_vs_grid": round(median_steps / grid_steps, 3) if median_steps else None,
            f"{name}_steps_ratio_vs_grid_total": round(median_steps / grid_total, 3) if median_steps else None,
            f"{name}_trials_to_grid_best": [trials_to_reach(r["trials"], target) for r in results],
            f"{name}_best": [round(r["best"], 4) for r in results],
            f"{name}_pruned": [sum(t["state"] == "pruned" for t in r["trials"]) for r in results],
            f"{name}_overhead_median": round(statistics.median(r["overhead"] for r in results), 4)}


def main() -> None:
    """Run the strategies and print one JSON line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny grid and budgets (under a minute)")
    parser.add_argument("--seeds", type=int, help="seeds of random and TPE (full mode default: 10)")
    parser.add_argument("--dump", type=Path, help="also write every trial row of every search to this JSON file")
    args = parser.parse_args()
    s = sizes(args.small)
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error(f"--seeds must be at least 1 (got {args.seeds})")
        s["seeds"] = list(range(args.seeds))
    grid_points = len(s["lr"]) * len(s["channels"]) * len(s["dropout"]) * len(s["weight_decay"])
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder, open_store(folder) as store:
        raw = yaml.safe_load(BASE)
        with stage_run(store, kind="data", name="bench", config={}) as ctx:
            dataset = data_stage.run(validate_recipe(raw), ctx=ctx)
        grid = search(store, dataset, s, name="grid", tune={
            "sampler": "grid", "pruner": "none", "n_trials": grid_points, "space": grid_space(s)})
        target = grid["best"] - TOLERANCE
        grid_steps = expected_steps_to_reach(grid["trials"], target)
        runs: dict[str, list[dict[str, Any]]] = {"random": [], "tpe_median": [], "tpe_nopruner": []}
        for seed in s["seeds"]:
            runs["random"].append(search_until(store, dataset, s, name=f"random-{seed}", target=target,
                                               budget=grid_points, tune={
                "sampler": "random", "pruner": "none", "seed": seed, "space": continuous_space(s)}))
            runs["tpe_median"].append(search_until(store, dataset, s, name=f"tpe-{seed}", target=target,
                                                   budget=grid_points, tune={
                "sampler": "tpe", "pruner": "median", "seed": seed, "space": continuous_space(s)}))
            runs["tpe_nopruner"].append(search_until(store, dataset, s, name=f"tpe-nopruner-{seed}",
                                                     target=target, budget=grid_points, tune={
                "sampler": "tpe", "pruner": "none", "seed": seed, "space": continuous_space(s)}))

    grid_total = sum(int(t.get("steps") or 0) for t in grid["trials"])
    replay = median_rule_prunes(grid["trials"], target, startup=MEDIAN_STARTUP, warmup=MEDIAN_WARMUP)
    figures: dict[str, Any] = {
        "benchmark": "tune_efficiency", "mode": "small" if args.small else "full", "task": "digits+cnn",
        "epochs_per_trial": s["epochs"], "grid_points": grid_points, "trial_budget": grid_points,
        "seeds": s["seeds"], "grid_best": round(grid["best"], 4), "target": round(target, 4),
        "grid_steps_to_best_expected": round(grid_steps, 1),
        "grid_steps_to_best_run_order": steps_to_reach(grid["trials"], target),
        "grid_points_within_target": sum(reached(t, target) for t in grid["trials"]),
        "grid_total_steps": grid_total,
        "grid_overhead": round(grid["overhead"], 4),
        "median_rule_replay_on_grid": replay,
        **summary("random", runs["random"], target, grid_steps, grid_total),
        **summary("tpe_median", runs["tpe_median"], target, grid_steps, grid_total),
        **summary("tpe_nopruner", runs["tpe_nopruner"], target, grid_steps, grid_total),
        "goal_tpe_steps_ratio_le": 0.40, "goal_overhead_le": 0.05,
        "wall_s": round(time.perf_counter() - started, 1),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cores": len(os.sched_getaffinity(0)),
    }
    if args.dump:
        args.dump.write_text(json.dumps({"target": target, "grid": grid["trials"],
                                         **{f"{k}-{seed}": r["trials"] for k, rs in runs.items()
                                            for seed, r in zip(s["seeds"], rs, strict=True)}}, default=str))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
