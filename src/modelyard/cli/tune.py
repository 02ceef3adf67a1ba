"""``yard tune``: the hyperparameter search of a recipe's ``tune:`` section, alone."""

from __future__ import annotations

import json
from pathlib import Path

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import console, emit_json, json_option, print_table


@click.command("tune")
@recipe_argument
@overrides_argument
@click.option("--resume", is_flag=True, help="Continue the existing study of the same name (same space and recipe).")
@click.option("--dataset", "dataset_id", default=None, help="Search on this prepared dataset id instead of preparing.")
@click.option("--best-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the best config as a recipe here (default: .yard/tune/<study>.best.yaml).")
@click.option("--no-register", is_flag=True, help="Do not register the best model.")
@json_option
def tune_command(recipe: Path, overrides: tuple[str, ...], resume: bool, dataset_id: str | None,
                 best_out: Path | None, no_register: bool, as_json: bool) -> None:
    """Search RECIPE's tune.space: each trial is a train run; the best config is written as a recipe.

    Prepares the data (or takes --dataset), runs the study (resumable with --resume after a
    kill), registers the best model (unless --no-register or register.enabled is false) and
    writes an HTML report with the search plots.
    """
    from modelyard import data as data_stage
    from modelyard import tune as tune_stage
    from modelyard.config.loader import recipe_to_dict
    from modelyard.core.errors import ConfigError
    from modelyard.core.refs import DatasetRef
    from modelyard.report import render_run_report
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    loaded = load(recipe, overrides)
    if loaded.tune is None:
        raise ConfigError("the recipe has no tune: section", where=str(recipe),
                          hint="add tune: {space: …} (see recipes/tune-digits.yaml)")
    config = recipe_to_dict(loaded)
    with open_store() as store:
        if dataset_id:
            dataset = DatasetRef(id=store.artifacts.resolve_prefix(dataset_id).id)
        else:
            with stage_run(store, kind="data", name=loaded.name, config=config["data"], seed=loaded.seed) as ctx:
                dataset = data_stage.run(loaded, ctx=ctx)
        with stage_run(store, kind="tune", name=loaded.name, config=config, seed=loaded.seed) as ctx:
            result = tune_stage.run(loaded, dataset, ctx=ctx, resume=resume, best_recipe_out=best_out)
        version = None
        if loaded.registration.enabled and not no_register:
            version = store.models.register(loaded.name, result.model, run_id=result.model_run_id,
                                            description=loaded.description,
                                            metrics={result.metric: result.best_value, "tune/trial": result.best_trial},
                                            alias=loaded.registration.alias)
        report = render_run_report(store, result.search_run_id)
    if as_json:
        emit_json({**result.table(), "registered": version.uri if version else None, "report": str(report)})
        return
    print_table(f"yard tune · study {result.study} · {result.metric}",
                ["trial", "state", "value", "steps", "params", "note"],
                [(r["number"], r["state"], _value(r), r.get("steps"), json.dumps(r["params"], default=str),
                  (r.get("error") or r.get("stopped") or "")[:60]) for r in result.trials])
    best = _value({"value": result.best_value, "std": result.best_std})
    rows: list[tuple[str, object]] = [
        ("best trial", f"{result.best_trial}: {result.metric} = {best}"),
        ("best recipe", str(result.best_recipe_path)),
        ("model", version.uri if version else result.model.short),
        *[(f"importance {k}", v) for k, v in result.importances.items()],
        ("tuner overhead", f"{result.overhead['overhead_fraction']:.1%} of {result.overhead['search_seconds']:.1f} s"),
        *[("warning", w) for w in result.warnings],
        ("report", str(report)),
    ]
    print_table("best", ["", ""], rows)
    console.print(f"next: [bold]yard run {result.best_recipe_path}[/bold]  ·  [bold]yard runs show "
                  f"{result.search_run_id}[/bold]")


def _value(row: dict[str, object]) -> str:
    value, std = row.get("value"), row.get("std")
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.4f} ± {std:.4f}" if isinstance(std, int | float) else f"{value:.4f}"


COMMANDS = [tune_command]
