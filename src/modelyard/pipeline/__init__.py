"""The only place stages are chained: a Recipe → data → train → evaluate → register → report.

Each stage runs as its own run under one ``pipeline`` run, with lineage through the
artifacts it reads and writes. A stage that fails marks its run and the pipeline run
``failed`` with the error; published artifacts are complete or absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard import data as data_stage
from modelyard import evaluate as evaluate_stage
from modelyard import train as train_stage
from modelyard.config.loader import recipe_to_dict
from modelyard.config.recipe import Recipe
from modelyard.core.refs import DatasetRef, ModelRef, ReportRef
from modelyard.report import render_run_report
from modelyard.store.context import Progress, SilentProgress, stage_run
from modelyard.store.project import Store
from modelyard.store.registry import ModelVersion


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


def run_recipe(recipe: Recipe, store: Store, *, progress: Progress | None = None,
               report_dir: Path | None = None) -> PipelineResult:
    """Run every section of ``recipe`` in order and return what was made."""
    config = recipe_to_dict(recipe)
    progress = progress or SilentProgress()
    stage_runs: dict[str, str] = {}
    with stage_run(store, kind="pipeline", name=recipe.name, config=config, seed=recipe.seed) as top:
        with stage_run(store, kind="data", name=recipe.name, config=config["data"],
                       parent_run_id=top.run_id, seed=recipe.seed) as ctx:
            stage_runs["data"] = ctx.run_id
            dataset = data_stage.run(recipe, ctx=ctx)
        with stage_run(store, kind="train", name=recipe.name, config=config, parent_run_id=top.run_id,
                       progress=progress, seed=recipe.seed) as ctx:
            stage_runs["train"] = ctx.run_id
            model = train_stage.run(recipe, dataset, ctx=ctx)
        with stage_run(store, kind="evaluate", name=recipe.name, config=config["evaluate"],
                       parent_run_id=top.run_id, seed=recipe.seed) as ctx:
            stage_runs["evaluate"] = ctx.run_id
            evaluation = evaluate_stage.run(recipe.evaluate, model, dataset, ctx=ctx)
        report = evaluate_stage.read_report(store, evaluation)
        metrics = {f"test/{k}": v for k, v in report["metrics"].items()}
        version = None
        if recipe.registration.enabled:
            version = store.models.register(recipe.name, model, run_id=stage_runs["train"],
                                            description=recipe.description, metrics=metrics,
                                            alias=recipe.registration.alias)
        rows = dict(store.runs.get(stage_runs["data"])["summary"] or {})
        summary: dict[str, Any] = {"dataset": dataset.id, "model": model.id, "evaluation": evaluation.id,
                                   **metrics, "stage_runs": stage_runs}
        if version is not None:
            summary["registered"] = version.uri
        store.runs.set_summary(top.run_id, summary)
        top_id = top.run_id
    report_path = render_run_report(store, top_id, out_dir=report_dir)
    return PipelineResult(run_id=top_id, dataset=dataset, model=model, evaluation=evaluation, metrics=metrics,
                          dataset_rows={k.removeprefix("rows/"): v for k, v in rows.items() if k.startswith("rows/")},
                          version=version, report_path=report_path, stage_runs=stage_runs)


__all__ = ["PipelineResult", "run_recipe"]
