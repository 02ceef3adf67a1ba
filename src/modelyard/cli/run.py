"""``yard run`` and ``yard quickstart``: a whole recipe, end to end."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import console, print_table
from modelyard.cli.train import distributed_options, launch_options


@click.command("run")
@recipe_argument
@overrides_argument
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the HTML report (default: .yard/reports).")
@click.option("--resume", "resume", default=None, metavar="RUN|last",
              help="Continue the training of a killed or failed pipeline run from its newest checkpoint, exactly "
                   "('last': the newest unfinished pipeline run of this recipe); the other stages run again.")
@distributed_options
def run_command(recipe: Path, overrides: tuple[str, ...], report_dir: Path | None, resume: str | None, nproc: int,
                nnodes: int, rdzv_endpoint: str | None, rdzv_timeout: float, memory: str | None) -> None:
    """Run every section of RECIPE in order: data → train → evaluate → register → report.

    Overrides re-validate the recipe, e.g. `yard run r.yaml train.epochs=3 seed=1`.
    `--nproc N` trains under torchrun (see `yard train --help`); `--resume last` continues an
    interrupted run's training from its checkpoint.
    """
    from modelyard.plan.memory import parse_bytes

    loaded = load(recipe, overrides)
    options = launch_options(nproc, nnodes, rdzv_endpoint, rdzv_timeout)
    _run(loaded, report_dir, launch=options, memory=parse_bytes(memory) if memory is not None else None,
         resume=resume)


def quickstart_recipe() -> Path:
    """``recipes/quickstart.yaml`` in the working directory, else the copy shipped in the package."""
    local = Path("recipes/quickstart.yaml")
    if local.is_file():
        return local
    return Path(str(resources.files("modelyard.cli").joinpath("quickstart.yaml")))


@click.command("quickstart")
@overrides_argument
def quickstart_command(overrides: tuple[str, ...]) -> None:
    """Run the bundled quickstart: scikit-learn digits with a small CNN, end to end."""
    _run(load(quickstart_recipe(), overrides), None)


def _run(recipe: object, report_dir: Path | None, *, launch: Any = None, memory: int | None = None,
         resume: str | None = None) -> None:
    from modelyard.config.recipe import Recipe
    from modelyard.pipeline import run_recipe
    from modelyard.store import open_store
    from modelyard.store.context import RichProgress

    assert isinstance(recipe, Recipe)
    started = time.perf_counter()
    with open_store() as store:
        result = run_recipe(recipe, store, progress=RichProgress(), report_dir=report_dir, launch=launch,
                            memory=memory, resume=resume)
    wall = time.perf_counter() - started
    rows: list[tuple[str, object]] = [
        ("run", result.run_id),
        ("data", ", ".join(f"{k} {result.dataset_rows[k]}" for k in ("train", "valid", "test")
                           if k in result.dataset_rows)),
        ("dataset", result.dataset.short),
        *[(k, v) for k, v in result.metrics.items()],
        ("model", result.version.uri + (f" (alias {recipe.registration.alias})"
                                        if recipe.registration.alias else "") if result.version else "not registered"),
        ("report", str(result.report_path) if result.report_path else
         f"not written (encrypted store): yard report {result.run_id} --out DIR"),
        ("wall time", f"{wall:.1f} s"),
    ]
    print_table(f"yard run · {recipe.name}", ["", ""], rows)
    if result.version:
        console.print(f"next: [bold]yard models show {result.version.uri}[/bold]  ·  "
                      f"[bold]yard runs show {result.run_id}[/bold]"
                      + (f"  ·  open {result.report_path}" if result.report_path else ""))


COMMANDS = [run_command, quickstart_command]
