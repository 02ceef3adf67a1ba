"""``yard report RUN``."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.output import console


@click.command("report")
@click.argument("run_id")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the HTML file (default: .yard/reports).")
def report_command(run_id: str, out_dir: Path | None) -> None:
    """Write a self-contained HTML report of RUN (loss curves, metrics, confusion matrix)."""
    from modelyard.report import render_run_report
    from modelyard.store import open_store

    with open_store() as store:
        run = store.runs.get(run_id)
        path = render_run_report(store, run["id"], out_dir=out_dir)
    console.print(f"report: {path}")


COMMANDS = [report_command]
