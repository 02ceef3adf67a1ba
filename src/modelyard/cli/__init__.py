"""``yard``: thin commands, one module per group. Never imports torch at import time.

Any :class:`~modelyard.core.errors.YardError` becomes one line on stderr and exit code 2
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import sys

import click

from modelyard.cli.app import yard
from modelyard.core.errors import YardError


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``yard`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        yard.main(args=args, prog_name="yard", standalone_mode=False)
    except YardError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


__all__ = ["main", "yard"]
