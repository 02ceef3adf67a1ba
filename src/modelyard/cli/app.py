"""The ``yard`` command group; each subgroup lives in its own module."""

from __future__ import annotations

import click

from modelyard import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="yard")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
def yard(debug: bool) -> None:
    """modelyard: data → train → evaluate → registry, on the machine you have.

    Start with `yard quickstart`, or `yard run RECIPE`.
    """
    from modelyard.core.logging import configure

    configure("DEBUG" if debug else "INFO")


def _register_commands() -> None:
    from modelyard.cli import audit, config, data, evaluate, keys, models, report, run, runs, serve, train, tune
    from modelyard.cli import compress as compress_cli
    from modelyard.cli import explain as explain_cli
    from modelyard.cli import plan as plan_cli
    from modelyard.cli import store as store_cli

    for module in (run, config, plan_cli, data, train, tune, evaluate, explain_cli, compress_cli, models, runs,
                   report, serve, keys, audit, store_cli):
        for command in module.COMMANDS:
            yard.add_command(command)


_register_commands()
