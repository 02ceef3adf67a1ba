"""Stage 3, search: many train runs → the best config + its ModelRef.

The recipe's ``tune:`` section names a search space by recipe paths; every sampled trial
recipe is validated like any recipe and trained by ``train.run`` in a run of kind
``trial`` under the search run. Optuna does the searching (TPE, random, grid, CMA-ES;
median / successive-halving / Hyperband pruning) on a journal file in the store, so a
search can run trials in parallel processes and resume after a kill; with
``backend: ray`` the same search runs on a Ray cluster through Ray Tune (Optuna's TPE as
the searcher, ASHA as the scheduler). Training never imports optuna: it only sees the
pull-style ``ctx.pruning`` reporter.

    yard tune recipes/tune-digits.yaml [--resume] [--json]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelyard.config.loader import recipe_to_dict
from modelyard.config.recipe import Recipe
from modelyard.core.atomic import atomic_write_text
from modelyard.core.errors import ConfigError, TrainingError
from modelyard.core.logging import get_logger
from modelyard.core.refs import ArtifactRef, DatasetRef, ModelRef
from modelyard.store.context import RunContext, stage_run
from modelyard.tune.folds import fold_datasets, train_plus_valid
from modelyard.tune.space import base_dict, check_model_params, trial_recipe

log = get_logger("modelyard.tune")


@dataclass
class TuneResult:
    """What a search produced."""

    study: str
    metric: str
    search_run_id: str
    best_trial: int
    best_value: float
    best_std: float | None
    best_params: dict[str, Any]
    best_recipe: Recipe
    best_recipe_path: Path
    model: ModelRef
    model_run_id: str
    artifact: ArtifactRef
    trials: list[dict[str, Any]]
    importances: dict[str, float]
    overhead: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    def table(self) -> dict[str, Any]:
        """The results as JSON-able data (what `yard tune --json` prints)."""
        return {"study": self.study, "search_run": self.search_run_id, "metric": self.metric,
                "best": {"trial": self.best_trial, "value": self.best_value, "std": self.best_std,
                         "params": self.best_params, "model": self.model.id, "model_run": self.model_run_id,
                         "recipe": str(self.best_recipe_path)},
                "importances": self.importances, "overhead": self.overhead, "warnings": self.warnings,
                "artifact": self.artifact.id, "trials": self.trials}


def run(recipe: Recipe, data: DatasetRef, *, ctx: RunContext, resume: bool = False,
        best_recipe_out: Path | None = None) -> TuneResult:
    """Search the recipe's ``tune.space`` on ``data`` and produce the best model.

    Args:
        recipe: a validated recipe with a ``tune:`` section.
        data: the prepared dataset (its train/valid splits; test stays untouched).
        ctx: the search run's context; each trial is a child run of ``ctx.run_id``.
        resume: continue an existing study of the same name (same space and base recipe).
        best_recipe_out: where to write the best config as a complete recipe
            (default ``<store>/tune/<study>.best.yaml``).

    Returns:
        The best trial, its recipe, the final model (the best trial's, or retrained when
        ``tune.refit`` or cross-validation asks), the results table and importances.

    Raises:
        ConfigError: no ``tune:`` section, a bad space path, an objective training never
            records, or a study that exists (without ``resume``, or with another space).
        TrainingError: no trial completed.
    """
    if recipe.tune is None:
        raise ConfigError("the recipe has no tune: section", hint="add one (see recipes/tune-digits.yaml)")
    # optuna is imported here, not at module level: it is the `tune` extra, and the pipeline
    # imports this package for every recipe.
    from modelyard.tune.study import journal_path, study_name
    from modelyard.tune.workers import usable_cores

    cfg = recipe.tune
    check_model_params(recipe, cfg)
    store = ctx.store
    # The clock starts after the imports above (torch comes with them): loading torch is not tuner overhead.
    started = time.perf_counter()
    notes: list[str] = []
    cores = usable_cores()
    n_jobs = cfg.n_jobs
    if n_jobs > cores:
        notes.append(f"tune.n_jobs {n_jobs} is more than the {cores} usable cores: capped at {cores}")
        log.warning(notes[-1])
        n_jobs = cores
    seed = cfg.seed if cfg.seed is not None else recipe.seed
    datasets = fold_datasets(store, data, cfg.cv, seed=seed, run_id=ctx.run_id) if cfg.cv else [data]
    store.artifacts.link_input(ctx.run_id, data)
    name = study_name(recipe)

    if cfg.backend == "ray":
        from modelyard.tune.ray_backend import search_on_ray

        rows, first_new, importance = search_on_ray(store, recipe, datasets=datasets, search_run_id=ctx.run_id,
                                                    seed=seed, resume=resume)
        workers = cores  # Ray runs one trial per reserved CPU
    else:
        rows, first_new, importance = _search_with_optuna(store, recipe, datasets=datasets,
                                                          search_run_id=ctx.run_id, seed=seed, n_jobs=n_jobs,
                                                          resume=resume)
        workers = n_jobs
    search_seconds = time.perf_counter() - started

    complete = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not complete:
        failed = [r for r in rows if r["state"] == "fail"]
        first_error = next((r["error"] for r in failed if r.get("error")), None)
        raise TrainingError(f"no trial of study {name!r} completed ({len(failed)} failed, "
                            f"{sum(r['state'] == 'pruned' for r in rows)} pruned)"
                            + (f"; first failure: {first_error}" if first_error else ""))
    pick = max if cfg.direction == "maximize" else min
    best = pick(complete, key=lambda r: r["value"])
    best_recipe = trial_recipe(recipe, best["params"], source=f"best trial {best['number']}")

    model, model_run_id = _final_model(store, recipe, best_recipe, best, data, search_run_id=ctx.run_id, seed=seed)
    new_rows = [r for r in rows if r["number"] >= first_new]
    trained = sum(r.get("train_seconds") or 0.0 for r in new_rows)
    overhead = {"search_seconds": round(search_seconds, 3), "train_seconds": round(trained, 3), "workers": workers,
                "overhead_fraction": round(max(0.0, 1.0 - trained / max(search_seconds * workers, 1e-9)), 4)}
    recipe_text = (f"# Best config of study {name!r}: trial {best['number']}, {cfg.metric} = {best['value']:.6g}\n"
                   + yaml.safe_dump(base_dict(best_recipe), sort_keys=False))
    search_doc = {"study": name, "metric": cfg.metric, "direction": cfg.direction, "sampler": cfg.sampler,
                  "pruner": cfg.pruner, "backend": cfg.backend, "cv_folds": cfg.cv.folds if cfg.cv else None,
                  "space": {k: v.model_dump(mode="json") for k, v in cfg.space.items()},
                  "best": {"trial": best["number"], "value": best["value"], "std": best.get("std"),
                           "params": best["params"], "model": model.id, "model_run": model_run_id},
                  "importances": importance, "overhead": overhead, "warnings": notes, "trials": rows}
    with store.artifacts.staging() as folder:
        (folder / "search.json").write_text(json.dumps(search_doc, indent=1, default=str), "utf-8")
        (folder / "best-recipe.yaml").write_text(recipe_text, "utf-8")
        artifact = store.artifacts.publish(folder, kind="search", run_id=ctx.run_id, parents=[data.id, model.id],
                                           relation="searched_from", meta={"study": name, "metric": cfg.metric})
    out = best_recipe_out or journal_path(store, name).with_suffix(".best.yaml")
    atomic_write_text(out, recipe_text)
    store.runs.set_summary(ctx.run_id, {
        "study": name, "metric": cfg.metric, "best_trial": best["number"], "best_value": best["value"],
        "best_std": best.get("std"), "best_params": best["params"], "model": model.id, "model_run": model_run_id,
        "trials": len(rows),
        **{f"trials/{state}": sum(r["state"] == state for r in rows) for state in ("complete", "pruned", "fail")},
        "search": artifact.id, "best_recipe": str(out), **{f"overhead/{k}": v for k, v in overhead.items()},
        "warnings": notes})
    return TuneResult(study=name, metric=cfg.metric, search_run_id=ctx.run_id, best_trial=best["number"],
                      best_value=best["value"], best_std=best.get("std"), best_params=best["params"],
                      best_recipe=best_recipe, best_recipe_path=out, model=model, model_run_id=model_run_id,
                      artifact=artifact, trials=rows, importances=importance, overhead=overhead, warnings=notes)


def _search_with_optuna(store: Any, recipe: Recipe, *, datasets: list[DatasetRef], search_run_id: str, seed: int,
                        n_jobs: int, resume: bool) -> tuple[list[dict[str, Any]], int, dict[str, float]]:
    """Run the Optuna study (in this process or ``n_jobs`` processes); returns (rows, first new trial, importances)."""
    from modelyard.tune.study import (
        count_finished,
        fail_interrupted,
        importances,
        journal_path,
        open_study,
        quiet_optuna,
        trial_rows,
    )
    from modelyard.tune.workers import WorkerPlan, load_study, run_parallel, search_loop, split_budget, usable_cores

    assert recipe.tune is not None
    cfg = recipe.tune
    quiet_optuna()
    max_steps = recipe.train.epochs * (cfg.cv.folds if cfg.cv else 1)
    study = open_study(store, recipe, resume=resume, sampler_seed=seed, max_steps=max_steps)
    interrupted = fail_interrupted(study, store)
    if interrupted:
        log.warning("trials %s were interrupted by an earlier kill and are recorded as failed", interrupted)
    existing = len(study.trials)
    remaining = None if cfg.n_trials is None else max(0, cfg.n_trials - count_finished(study))
    deadline = time.time() + cfg.timeout_s if cfg.timeout_s else None
    journal = journal_path(store, study.study_name)
    shares = split_budget(remaining, n_jobs)
    threads = max(1, usable_cores() // n_jobs) if n_jobs > 1 else None
    # Seeds move with the trials already in the study: a resumed random search does not replay its start.
    plans = [WorkerPlan(store_root=str(store.root), store_url=store.url, study=study.study_name, journal=str(journal),
                        recipe=recipe_to_dict(recipe), datasets=[d.id for d in datasets],
                        cross_validated=cfg.cv is not None, search_run_id=search_run_id, trials=share,
                        deadline=deadline, seed=seed + existing + 1000 * i, max_steps=max_steps, threads=threads)
             for i, share in enumerate(shares) if share is None or share > 0]
    if len(plans) == 1:
        search_loop(store, load_study(plans[0], recipe), recipe, plans[0])
    elif plans:
        run_parallel(plans)
    return trial_rows(study), existing, importances(study, seed=seed)


def _final_model(store: Any, recipe: Recipe, best_recipe: Recipe, best: dict[str, Any], data: DatasetRef, *,
                 search_run_id: str, seed: int) -> tuple[ModelRef, str]:
    """The best trial's model, or the best config retrained (refit on train+valid, or after CV)."""
    assert recipe.tune is not None
    from modelyard import train as train_stage

    if not recipe.tune.refit and recipe.tune.cv is None and best.get("model"):
        return ModelRef(id=best["model"]), str(best["run_id"])
    dataset = train_plus_valid(store, data, run_id=search_run_id) if recipe.tune.refit else data
    with stage_run(store, kind="train", name=recipe.name, config=recipe_to_dict(best_recipe),
                   parent_run_id=search_run_id, seed=best_recipe.seed) as ctx:
        store.runs.log_params(ctx.run_id, {"refit": recipe.tune.refit, "best_trial": best["number"]})
        model = train_stage.run(best_recipe, dataset, ctx=ctx)
    return model, ctx.run_id


__all__ = ["TuneResult", "run"]
