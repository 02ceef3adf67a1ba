"""Logging set-up: one ``modelyard`` logger tree, rich output on a terminal."""

from __future__ import annotations

import logging

_CONFIGURED = False


def get_logger(name: str) -> logging.Logger:
    """Return a logger under the ``modelyard`` tree."""
    return logging.getLogger(name if name.startswith("modelyard") else f"modelyard.{name}")


def configure(level: int | str = logging.INFO) -> None:
    """Send ``modelyard`` logs to stderr (rich handler when available). Idempotent."""
    global _CONFIGURED
    root = logging.getLogger("modelyard")
    root.setLevel(level)
    if _CONFIGURED:
        return
    try:
        from rich.console import Console
        from rich.logging import RichHandler

        # stderr, so logs never mix into `--json` output on stdout.
        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    except ImportError:  # pragma: no cover - rich is a core dependency
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    _CONFIGURED = True
