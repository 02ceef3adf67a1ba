"""``yard evaluate MODEL DATASET``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modelyard.cli.output import emit_json, json_option, print_table

if TYPE_CHECKING:
    from modelyard.core.refs import ModelRef
    from modelyard.store.project import Store


@click.command("evaluate")
@click.argument("model")
@click.argument("dataset")
@click.option("--metrics", default="accuracy,macro_f1", show_default=True, help="Comma-separated metric names.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True)
@json_option
def evaluate_command(model: str, dataset: str, metrics: str, split: str, as_json: bool) -> None:
    """Score MODEL (NAME@ALIAS, NAME@vN or an artifact id) on DATASET (an artifact id)."""
    from modelyard import evaluate as evaluate_stage
    from modelyard.config.evaluate import EvaluateConfig
    from modelyard.core.refs import DatasetRef, ModelRef
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    cfg = EvaluateConfig(metrics=[m.strip() for m in metrics.split(",") if m.strip()])
    with open_store() as store:
        model_ref = resolve_model(store, model)
        data_ref = DatasetRef(id=store.artifacts.resolve_prefix(dataset).id)
        with stage_run(store, kind="evaluate", name=model, config=cfg.model_dump()) as ctx:
            report_ref = evaluate_stage.run(cfg, ModelRef(id=model_ref.id), data_ref, ctx=ctx, split=split)
        report = evaluate_stage.read_report(store, report_ref)
    if as_json:
        emit_json({"run": ctx.run_id, "report": report_ref.id, **report})
    else:
        print_table(f"evaluation ({split}, {report['rows']} rows)", ["metric", "value"],
                    list(report["metrics"].items()))


def resolve_model(store: Store, text: str) -> ModelRef:
    """A registry reference (``name@alias``) or an artifact id prefix → ModelRef."""
    from modelyard.core.refs import ModelRef

    if "@" in text or not all(c in "0123456789abcdef" for c in text.lower()) or len(text) < 6:
        return store.models.resolve(text).ref
    return ModelRef(id=store.artifacts.resolve_prefix(text).id)


COMMANDS = [evaluate_command]
