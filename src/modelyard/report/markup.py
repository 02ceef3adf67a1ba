"""Small HTML builders shared by the report sections (everything escaped)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any


def esc(value: Any) -> str:
    """``value`` as escaped text."""
    return html.escape(fmt(value))


def fmt(value: Any) -> str:
    """Numbers to 4 decimals, None as an em dash, containers as JSON."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def key_table(rows: Sequence[tuple[str, Any]]) -> str:
    """A two-column key / value table."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def grid(header: Sequence[str], rows: Sequence[Sequence[Any]], *, raw: bool = False) -> str:
    """A table with a header row; ``raw`` cells are trusted HTML (already escaped by the caller)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw and isinstance(c, Markup) else esc(c)}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class Markup(str):
    """A string that is already safe HTML."""


def img(uri: str, alt: str) -> str:
    """An embedded image (``data:`` URI)."""
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def section(title: str, body: str, *, anchor: str | None = None) -> str:
    """``<section>`` with a heading."""
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{html.escape(title)}</h2>{body}</section>"


__all__ = ["Markup", "esc", "fmt", "grid", "img", "key_table", "section"]
