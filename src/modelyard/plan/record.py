"""Plans in the store, and what a later run measured beside what its plan predicted.

A plan is a run of kind ``plan``; its summary holds ``plan`` (the predictions), ``dataset``
and ``for_config`` (a digest of the resolved recipe it planned). After a train run,
:func:`compare_with_plan` finds the newest plan of the same recipe and dataset and writes
``plan_vs_measured`` into the train run's summary: predicted and measured peak memory and
step time, and their ratios.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from modelyard.config.loader import recipe_to_dict
from modelyard.config.recipe import Recipe
from modelyard.core.hashing import sha256_bytes
from modelyard.store.project import Store

PLAN_KIND = "plan"


def config_digest(config: dict[str, Any] | Recipe) -> str:
    """A digest of a resolved recipe (as a dict), insensitive to key order."""
    values = recipe_to_dict(config) if isinstance(config, Recipe) else config
    return sha256_bytes(json.dumps(values, sort_keys=True, default=str).encode())[:16]


def plan_summary(predictions: dict[str, Any], *, dataset_id: str, config: dict[str, Any] | Recipe) -> dict[str, Any]:
    """The summary fields that make a plan run findable by :func:`compare_with_plan`."""
    return {"plan": predictions, "dataset": dataset_id, "for_config": config_digest(config)}


def find_plan(store: Store, *, name: str, dataset_id: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The newest finished plan run of this recipe (same resolved config) on this dataset."""
    digest = config_digest(config)
    for run in store.runs.list(kind=PLAN_KIND, limit=200):
        summary = run.get("summary") or {}
        if (run.get("name") == name and run.get("status") == "finished" and summary.get("dataset") == dataset_id
                and summary.get("for_config") == digest):
            return run
    return None


def compare_with_plan(store: Store, train_run_id: str) -> dict[str, Any] | None:
    """Store the matching plan's predictions beside what the train run measured; None without a plan."""
    run = store.runs.get(train_run_id)
    inputs = [artifact for artifact, kind in store.runs.artifacts(train_run_id, role="input") if kind == "dataset"]
    if not inputs or not run.get("config"):
        return None
    plan = find_plan(store, name=run["name"], dataset_id=inputs[0], config=run["config"])
    if plan is None:
        return None
    predicted = plan["summary"]["plan"]
    summary = dict(run.get("summary") or {})
    # Logged step times average over log_every_steps; the first window holds the warm-up step.
    steps = [value for _, value in store.runs.metric_series(train_run_id, "train/step_time_s")][1:]
    keys = ("peak_memory_mb", "step_seconds")
    measured = {"peak_memory_mb": (summary.get("compute") or {}).get("peak_memory_mb"),
                "step_seconds": min(steps) if steps else None,      # the same statistic as the plan's
                "step_median": statistics.median(steps) if steps else None}
    ratios = {key: round(measured[key] / predicted[key], 3) for key in keys if measured.get(key) and predicted.get(key)}
    summary["plan_vs_measured"] = {"plan_run": plan["id"], "predicted": {k: predicted.get(k) for k in keys},
                                   "measured": measured, "measured_over_predicted": ratios}
    store.runs.set_summary(train_run_id, summary)
    return summary["plan_vs_measured"]  # type: ignore[no-any-return]


__all__ = ["PLAN_KIND", "compare_with_plan", "config_digest", "find_plan", "plan_summary"]
