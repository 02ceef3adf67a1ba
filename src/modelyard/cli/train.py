"""``yard train``: data + train stages of a recipe (no evaluation or registration)."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import print_table


@click.command("train")
@recipe_argument
@overrides_argument
@click.option("--dataset", "dataset_id", default=None, help="Train on this prepared dataset id instead of preparing.")
def train_command(recipe: Path, overrides: tuple[str, ...], dataset_id: str | None) -> None:
    """Prepare the data (or take --dataset) and train the recipe's model."""
    from modelyard import data as data_stage
    from modelyard import train as train_stage
    from modelyard.config.loader import recipe_to_dict
    from modelyard.core.refs import DatasetRef
    from modelyard.store import open_store
    from modelyard.store.context import RichProgress, stage_run

    loaded = load(recipe, overrides)
    config = recipe_to_dict(loaded)
    with open_store() as store:
        if dataset_id:
            dataset = DatasetRef(id=store.artifacts.resolve_prefix(dataset_id).id)
        else:
            with stage_run(store, kind="data", name=loaded.name, config=config["data"], seed=loaded.seed) as ctx:
                dataset = data_stage.run(loaded, ctx=ctx)
        with stage_run(store, kind="train", name=loaded.name, config=config, progress=RichProgress(),
                       seed=loaded.seed) as ctx:
            model = train_stage.run(loaded, dataset, ctx=ctx)
        summary = store.runs.get(ctx.run_id)["summary"]
    print_table("trained", ["", ""], [("run", ctx.run_id), ("dataset", dataset.id), ("model", model.id),
                                      *summary.items()])


COMMANDS = [train_command]
