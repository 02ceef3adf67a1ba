"""Validation of user-chosen names (models, aliases, tags) that reach paths or URLs."""

from __future__ import annotations

import re

from modelyard.core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(value: str, *, what: str = "name") -> str:
    """Return ``value`` if it is a safe name, else raise :class:`ConfigError`.

    A safe name starts with a letter or digit and holds only letters, digits, ``.``,
    ``_`` and ``-`` (at most 128 characters), and is not ``..``-like: it can never
    leave a directory, encode a separator or smuggle a NUL.
    """
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ConfigError(
            f"invalid {what} {value!r}",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return value
