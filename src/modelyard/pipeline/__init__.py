"""The only place stages are chained: a Recipe → data → train (or tune) → evaluate → register → report.

Each stage runs as its own run under one ``pipeline`` run, with lineage through the
artifacts it reads and writes. A stage that fails marks its run and the pipeline run
``failed`` with the error; published artifacts are complete or absent.

``resume`` (``yard run --resume RUN|last``) continues the training stage of an interrupted
pipeline run from its newest checkpoint, in a new pipeline run: the data stage runs again
(content-addressed, it gives the same dataset id the checkpoint's fingerprint names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard import compress as compress_stage
from modelyard import data as data_stage
from modelyard import evaluate as evaluate_stage
from modelyard import explain as explain_stage
from modelyard import plan as plan_stage
from modelyard import train as train_stage
from modelyard import tune as tune_stage
from modelyard.config.loader import recipe_to_dict
from modelyard.config.recipe import Recipe
from modelyard.core.errors import ConfigError, NotFoundError
from modelyard.core.refs import DatasetRef, ModelRef, ReportRef
from modelyard.report import render_run_report
from modelyard.store.context import Progress, SilentProgress, stage_run
from modelyard.store.project import Store
from modelyard.store.registry import ModelVersion
from modelyard.train.checkpoint import latest_checkpoint
from modelyard.train.distributed import LaunchOptions, run_distributed


@dataclass
class PipelineResult:
    """What one `yard run` produced."""

    run_id: str
    dataset: DatasetRef
    model: ModelRef
    evaluation: ReportRef
    metrics: dict[str, float]
    dataset_rows: dict[str, int]
    version: ModelVersion | None
    report_path: Path | None
    stage_runs: dict[str, str] = field(default_factory=dict)


def find_resume_train_run(store: Store, resume: str, *, name: str) -> str:
    """The train run to continue for ``yard run --resume``: ``resume`` is a pipeline run id (prefix),
    a train run id, or ``last`` (the newest unfinished pipeline run of recipe ``name`` whose train
    stage left a checkpoint).

    Raises:
        NotFoundError: no such run, another kind of run, or no checkpoint to resume from.
    """
    def train_child(pipeline_id: str) -> str | None:
        for child in store.runs.list(kind="train", parent_run_id=pipeline_id, limit=20):
            if latest_checkpoint(train_stage.checkpoint_root(store, child["id"])) is not None:
                return str(child["id"])
        return None

    if resume == "last":
        for run in store.runs.list(kind="pipeline", limit=200):
            if run.get("name") == name and run.get("status") != "finished":
                found = train_child(run["id"])
                if found is not None:
                    return found
        raise NotFoundError(f"no interrupted pipeline run of {name!r} with a training checkpoint to resume",
                            hint="pass a run id: --resume RUN (see `yard runs list`)")
    run = store.runs.get(resume)
    if run.get("kind") == "train":
        return str(run["id"])  # the train stage checks it has a checkpoint
    if run.get("kind") != "pipeline":
        raise NotFoundError(f"run {run['id'][:12]} is a {run.get('kind')} run, not a pipeline or train run")
    found = train_child(run["id"])
    if found is None:
        raise NotFoundError(f"pipeline run {run['id'][:12]} has no training checkpoint to resume from",
                            hint="checkpoints are written each epoch (train.checkpoint.every_steps for more)")
    return found


def run_recipe(recipe: Recipe, store: Store, *, progress: Progress | None = None,
               report_dir: Path | None = None, launch: LaunchOptions | None = None,
               memory: int | None = None, resume: str | None = None) -> PipelineResult:
    """Run every section of ``recipe`` in order and return what was made.

    ``launch``: train under torchrun (``yard run --nproc``); ``memory``: the budget in bytes for
    ``train.batch_size: auto`` (default: available memory); ``resume``: a pipeline (or train) run
    id, or ``last``, whose training continues from its newest checkpoint (:func:`find_resume_train_run`).

    Raises:
        ConfigError: ``resume`` with a ``tune`` section (an interrupted study continues by itself).
    """
    config = recipe_to_dict(recipe)
    progress = progress or SilentProgress()
    stage_runs: dict[str, str] = {}
    resume_train = None
    if resume is not None:
        if recipe.tune is not None:
            raise ConfigError("--resume continues a training run; a recipe with a tune section continues its "
                              "study by itself", where="tune", hint="run `yard run` again without --resume")
        resume_train = find_resume_train_run(store, resume, name=recipe.name)
    with stage_run(store, kind="pipeline", name=recipe.name, config=config, seed=recipe.seed) as top:
        if resume_train is not None:
            store.runs.log_params(top.run_id, {"resumed_train_run": resume_train})
        with stage_run(store, kind="data", name=recipe.name, config=config["data"],
                       parent_run_id=top.run_id, seed=recipe.seed) as ctx:
            stage_runs["data"] = ctx.run_id
            dataset = data_stage.run(recipe, ctx=ctx)
        if recipe.tune is not None:
            # Search instead of one training run; an interrupted `yard run` continues its study.
            with stage_run(store, kind="tune", name=recipe.name, config=config, parent_run_id=top.run_id,
                           seed=recipe.seed) as ctx:
                stage_runs["tune"] = ctx.run_id
                searched = tune_stage.run(recipe, dataset, ctx=ctx, resume=True)
            model = searched.model
            stage_runs["train"] = searched.model_run_id
        else:
            # batch_size auto: the plan picks the largest batch within the budget (stored as a plan run).
            recipe = plan_stage.resolve_for_training(recipe, dataset, store, budget=memory,
                                                     nproc=launch.nproc if launch else 1, parent_run_id=top.run_id)
            with stage_run(store, kind="train", name=recipe.name, config=recipe_to_dict(recipe),
                           parent_run_id=top.run_id, progress=progress, seed=recipe.seed) as ctx:
                stage_runs["train"] = ctx.run_id
                if launch is not None:
                    model = run_distributed(recipe, dataset, ctx=ctx, options=launch, resume=resume_train)
                else:
                    model = train_stage.run(recipe, dataset, ctx=ctx, resume=resume_train)
            plan_stage.compare_with_plan(store, stage_runs["train"])
        with stage_run(store, kind="evaluate", name=recipe.name, config=config["evaluate"],
                       parent_run_id=top.run_id, seed=recipe.seed) as ctx:
            stage_runs["evaluate"] = ctx.run_id
            evaluation = evaluate_stage.run(recipe.evaluate, model, dataset, ctx=ctx)
        report = evaluate_stage.read_report(store, evaluation)
        if recipe.explain.enabled and report.get("task") != "language-modeling":
            with stage_run(store, kind="explain", name=recipe.name, config=config.get("explain", {}),
                           parent_run_id=top.run_id, seed=recipe.seed) as ctx:
                stage_runs["explain"] = ctx.run_id
                explain_stage.run(recipe.explain, model, dataset, ctx=ctx)
        metrics = {f"test/{k}": v for k, v in report["metrics"].items()}
        version = None
        if recipe.registration.enabled:
            version = store.models.register(recipe.name, model, run_id=stage_runs["train"],
                                            description=recipe.description, metrics=metrics,
                                            alias=recipe.registration.alias)
        if recipe.compress is not None:
            # Stage 6 after registration, so every accepted variant's tags name its parent's version.
            with stage_run(store, kind="compress", name=recipe.name, config=config["compress"],
                           parent_run_id=top.run_id, progress=progress, seed=recipe.seed) as ctx:
                stage_runs["compress"] = ctx.run_id
                compress_stage.run(recipe, model, dataset, ctx=ctx)
        rows = dict(store.runs.get(stage_runs["data"])["summary"] or {})
        summary: dict[str, Any] = {"dataset": dataset.id, "model": model.id, "evaluation": evaluation.id,
                                   **metrics, "stage_runs": stage_runs}
        if version is not None:
            summary["registered"] = version.uri
        store.runs.set_summary(top.run_id, summary)
        top_id = top.run_id
    # An encrypted store keeps no plaintext report inside it: one is written only where asked.
    report_path = None if store.encrypted and report_dir is None else render_run_report(store, top_id,
                                                                                       out_dir=report_dir)
    return PipelineResult(run_id=top_id, dataset=dataset, model=model, evaluation=evaluation, metrics=metrics,
                          dataset_rows={k.removeprefix("rows/"): v for k, v in rows.items() if k.startswith("rows/")},
                          version=version, report_path=report_path, stage_runs=stage_runs)


__all__ = ["PipelineResult", "find_resume_train_run", "run_recipe"]
