"""``yard compress MODEL RECIPE``: stage 6 alone, on an already trained model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import emit_json, json_option, print_table

if TYPE_CHECKING:
    from modelyard.core.refs import DatasetRef, ModelRef
    from modelyard.store.project import Store


@click.command("compress")
@click.argument("model")
@recipe_argument
@overrides_argument
@click.option("--dataset", "dataset_id", default=None,
              help="Dataset id to check against (default: the one the model was trained on).")
@json_option
def compress_command(model: str, recipe: Path, overrides: tuple[str, ...], dataset_id: str | None,
                     as_json: bool) -> None:
    """Make the recipe's compress: variants of MODEL (NAME@ALIAS, NAME@vN or an artifact id).

    Each variant is scored on the held-out split; those within the budget are registered
    as new versions of the model (tagged with method and parent), the others reported.
    """
    from modelyard import compress as compress_stage
    from modelyard.cli.evaluate import resolve_model
    from modelyard.config.loader import recipe_to_dict
    from modelyard.core.errors import ConfigError
    from modelyard.core.refs import DatasetRef
    from modelyard.store import open_store
    from modelyard.store.context import RichProgress, stage_run

    loaded = load(recipe, overrides)
    if loaded.compress is None:
        raise ConfigError("the recipe has no compress: section", where=str(recipe),
                          hint="add compress: {variants: [{method: int8-dynamic}]}")
    with open_store() as store:
        model_ref = resolve_model(store, model)
        data_ref = (DatasetRef(id=store.artifacts.resolve_prefix(dataset_id).id) if dataset_id
                    else training_dataset(store, model_ref))
        versions = store.models.versions_of_artifact(model_ref.id)
        name = versions[0].name if versions else loaded.name
        config = recipe_to_dict(loaded)["compress"]
        with stage_run(store, kind="compress", name=name, config=config, seed=loaded.seed,
                       progress=None if as_json else RichProgress()) as ctx:
            result = compress_stage.run(loaded, model_ref, data_ref, ctx=ctx, name=name)
    if as_json:
        emit_json({"run": ctx.run_id, **result.to_dict()})
        return
    metric = result.budget_metric
    rows: list[list[object]] = [["(parent)", "-", f"{result.parent_metrics[metric]:.4f}", "-",
                                 result.parent_size_bytes, "1.00", result.parent_uri or result.parent[:12]]]
    for v in result.variants:
        ratio = f"{result.parent_size_bytes / v.size_bytes:.2f}" if v.size_bytes else "-"
        value = f"{v.metrics[metric]:.4f}" if metric in v.metrics else "-"
        drop = f"{v.drop:+.2f}" if v.drop is not None else "-"
        rows.append([v.name, v.status, value, drop, v.size_bytes or "-", ratio, v.version or v.reason[:60]])
    print_table(f"compress ({result.split} split, budget {result.max_drop:g} points of {metric})",
                ["variant", "status", metric, "drop", "bytes", "smaller", "version / reason"], rows)


def training_dataset(store: Store, model: ModelRef) -> DatasetRef:
    """The dataset a model artifact was trained from (its lineage parent of kind dataset).

    Raises:
        NotFoundError: the model has no dataset parent (pass --dataset).
    """
    from modelyard.core.errors import NotFoundError
    from modelyard.core.refs import DatasetRef

    for parent_id, _relation in store.artifacts.parents(model.id):
        if store.artifacts.kind_of(parent_id) == "dataset":
            return DatasetRef(id=parent_id)
    raise NotFoundError(f"model {model.id[:12]} records no training dataset", hint="pass --dataset DATASET_ID")


COMMANDS = [compress_command]
