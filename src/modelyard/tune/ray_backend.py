"""Scale-out: the same search on a Ray cluster through Ray Tune.

Optuna's TPE is the searcher (``OptunaSearch`` with the recipe's space as a define-by-run
function, so conditional dimensions work) and ASHA the scheduler. Each Ray trial runs the
same :func:`~modelyard.tune.trial.run_trial` as the local search, so it is a ``trial``
run under the search run in the modelyard store: the store (database and artifact folder)
must be reachable from every Ray worker, e.g. a PostgreSQL URL (``$YARD_STORE_URL``) and
a shared filesystem for the store folder. ASHA stops a trial by ending its actor; such
trial runs are closed afterwards as stopped.

``--resume`` is not supported here: Ray Tune restores experiments from its own folder.
"""

from __future__ import annotations

import math
import time
from typing import Any

from modelyard.config.loader import recipe_to_dict, validate_recipe
from modelyard.config.recipe import Recipe
from modelyard.config.tune import TuneConfig
from modelyard.core.errors import ConfigError
from modelyard.core.refs import DatasetRef
from modelyard.store.project import Store, open_store
from modelyard.tune.space import decode_params, suggest, trial_recipe
from modelyard.tune.study import replayed_importances
from modelyard.tune.trial import TrialReporter, run_trial

OBJECTIVE = "objective"


def _trial_number(trial_id: str) -> int:
    """Ray trial ids end in a zero-padded index (``ab12c_00003``)."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class _DefineSpace:
    """The space as Optuna define-by-run; a class, not a closure, because Ray checkpoints its searcher."""

    def __init__(self, cfg: TuneConfig) -> None:
        self.cfg = cfg

    def __call__(self, trial: Any) -> None:
        suggest(trial, self.cfg)


def ray_trial(config: dict[str, Any], payload: dict[str, Any]) -> None:
    """The Ray Tune function trainable: one modelyard trial, reporting each epoch to Tune."""
    import torch
    from ray import tune as ray_tune

    # One CPU per trial (the resources Tune reserved): keep torch from spreading over the node.
    torch.set_num_threads(1)
    recipe = validate_recipe(payload["recipe"], source="<search>")
    params = decode_params(recipe.tune, config) if recipe.tune else dict(config)
    number = _trial_number(ray_tune.get_context().get_trial_id())
    sampled = trial_recipe(recipe, params, source=f"ray trial {number}")
    holder: dict[str, str] = {}
    reporter = TrialReporter(payload["metric"],
                             send=lambda step, value: ray_tune.report({OBJECTIVE: value, "step": step,
                                                                       "run_id": holder.get("run_id", "")}),
                             prune=lambda: False, deadline=payload["deadline"])
    with open_store(payload["store_root"], payload["store_url"]) as store:
        run_trial(store, sampled, params, number=number, search_run_id=payload["search_run_id"],
                  datasets=[DatasetRef(id=d) for d in payload["datasets"]],
                  cross_validated=payload["cross_validated"], reporter=reporter,
                  on_run=lambda run_id: holder.__setitem__("run_id", run_id))


def search_on_ray(store: Store, recipe: Recipe, *, datasets: list[DatasetRef], search_run_id: str, seed: int,
                  resume: bool) -> tuple[list[dict[str, Any]], int, dict[str, float]]:
    """Run the search with Ray Tune; returns (result rows in the local search's format, 0, importances).

    Importances are fANOVA over the complete trials, as in the local search.

    Raises:
        ConfigError: ``resume`` was asked, or Ray is not installed.
    """
    assert recipe.tune is not None
    cfg = recipe.tune
    if resume:
        raise ConfigError("--resume works with backend 'optuna' only", where="tune.backend",
                          hint="Ray Tune keeps its own experiment folder under .yard/ray")
    try:
        import optuna
        import ray
        from ray import tune as ray_tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as exc:
        raise ConfigError(f"backend 'ray' needs Ray Tune: {exc}", where="tune.backend",
                          hint='pip install "ray[tune]"') from exc

    if not ray.is_initialized():
        ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False)
    max_steps = recipe.train.epochs * (cfg.cv.folds if cfg.cv else 1)

    mode = "max" if cfg.direction == "maximize" else "min"
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials)
    # A define-by-run space needs metric and mode on the searcher itself, not only on TuneConfig.
    searcher = OptunaSearch(space=_DefineSpace(cfg), sampler=sampler, metric=OBJECTIVE, mode=mode)
    # max_t one past the last epoch: ASHA would otherwise end a trial at its last report, before
    # the trial publishes its model and summary.
    scheduler = ASHAScheduler(time_attr="training_iteration", metric=OBJECTIVE, mode=mode, max_t=max_steps + 1,
                              grace_period=max(1, cfg.warmup_steps), reduction_factor=2)
    payload = {"recipe": recipe_to_dict(recipe), "metric": cfg.metric, "store_root": str(store.root),
               "store_url": store.url, "search_run_id": search_run_id, "datasets": [d.id for d in datasets],
               "cross_validated": cfg.cv is not None,
               "deadline": time.time() + cfg.timeout_s if cfg.timeout_s else None}
    tuner = ray_tune.Tuner(
        ray_tune.with_resources(ray_tune.with_parameters(ray_trial, payload=payload), {"cpu": 1}),
        tune_config=ray_tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=cfg.n_trials or -1, time_budget_s=cfg.timeout_s),
        run_config=ray_tune.RunConfig(name=f"{cfg.study_name or recipe.name}-{search_run_id}",
                                      storage_path=str(store.root / "ray"), verbose=0))
    grid = tuner.fit()
    results: list[Any] = [grid[i] for i in range(len(grid))]
    rows = [_row(store, cfg, result, index) for index, result in enumerate(results)]
    complete = [(dict(result.config or {}), row["value"]) for result, row in zip(results, rows, strict=True)
                if row["state"] == "complete" and row["value"] is not None]
    return rows, 0, replayed_importances(cfg, complete, seed=seed)


def _row(store: Store, cfg: TuneConfig, result: Any, index: int) -> dict[str, Any]:
    """One Ray result as a results-table row, completed from the trial run in the store."""
    metrics = result.metrics or {}
    run_id = metrics.get("run_id") or None
    history: list[list[float]] = []
    frame = result.metrics_dataframe
    if frame is not None and OBJECTIVE in frame:
        history = [[int(s), float(v)] for s, v in zip(frame["step"], frame[OBJECTIVE]) if not math.isnan(v)]
    summary: dict[str, Any] = {}
    if run_id:
        record = store.runs.get(run_id)
        summary = record.get("summary") or {}
        stopped_by_ray = record["status"] == "running" or (record["status"] == "failed" and result.error is None)
        if stopped_by_ray:
            # ASHA ended this trial mid-training (its actor is stopped, or the stop surfaced as an
            # error inside the trial): close its run as stopped early, not as a failure.
            store.runs.finish(run_id, status="finished", summary={**summary, "state": "pruned", "stopped": "asha"})
    if result.error is not None:
        state, value = "fail", None
    elif summary.get("state") == "complete":
        state, value = "complete", summary.get("value")
    else:
        state, value = "pruned", history[-1][1] if history else None
    return {"number": index, "state": state, "value": value, "params": decode_params(cfg, result.config or {}),
            "run_id": run_id, "std": summary.get("std"), "fold_values": summary.get("fold_values"),
            "model": summary.get("model") if state == "complete" else None, "steps": summary.get("steps"),
            "train_seconds": summary.get("train_seconds"), "stopped": "asha" if state == "pruned" else None,
            "error": str(result.error) if result.error is not None else None,
            "duration_s": metrics.get("time_total_s"), "intermediate": history}
