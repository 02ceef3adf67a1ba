"""``yard data prepare``."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import emit_json, json_option, print_table


@click.group("data")
def data_group() -> None:
    """Stage 1: prepare datasets."""


@data_group.command("prepare")
@recipe_argument
@overrides_argument
@json_option
def prepare_command(recipe: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Run only the data section of RECIPE and publish the dataset artifact."""
    from modelyard import data as data_stage
    from modelyard.config.loader import recipe_to_dict
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    loaded = load(recipe, overrides)
    with open_store() as store:
        with stage_run(store, kind="data", name=loaded.name, config=recipe_to_dict(loaded)["data"],
                       seed=loaded.seed) as ctx:
            ref = data_stage.run(loaded, ctx=ctx)
        summary = store.runs.get(ctx.run_id)["summary"]
    if as_json:
        emit_json({"run": ctx.run_id, "dataset": ref.id, **summary})
    else:
        print_table("dataset", ["", ""], [("run", ctx.run_id), ("dataset", ref.id), *summary.items()])


COMMANDS = [data_group]
