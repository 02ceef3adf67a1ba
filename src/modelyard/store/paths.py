"""Path safety: every name or relative path that comes from outside (CLI, bundles, manifests)
is checked here before it reaches the filesystem.

The rules refuse rather than normalise: ``a/../b`` is not "cleaned" into ``b``, it is an
error, because a name that needs cleaning came from someone probing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.core.names import check_name

# Letters, digits, '.', '_', '-' and '/' only: no '%' (URL-encoding), '\\', ':', NUL or spaces.
_REL_PATH = re.compile(r"^[A-Za-z0-9._/-]{1,512}$")
_VERSION = re.compile(r"^v?\d+$")


def check_alias(value: str) -> str:
    """An alias name: a safe name that cannot be read as a version number (``v3``, ``3``).

    Raises:
        ConfigError: naming the bad value.
    """
    check_name(value, what="alias")
    if _VERSION.match(value):
        raise ConfigError(f"alias {value!r} looks like a version number", hint="use a word, e.g. production")
    return value


def check_relpath(value: str, *, where: str = "path") -> str:
    """A relative POSIX path inside an artifact or bundle (``train.parquet``, ``artifacts/ab…/spec.json``).

    Refused: empty, absolute, ``..`` or ``.`` segments, empty segments (``a//b``), backslashes,
    drive letters, percent-encoding (plain or double), NUL and other control characters,
    and anything outside ``[A-Za-z0-9._/-]``.

    Raises:
        ArtifactError: naming the bad value.
    """
    if not isinstance(value, str) or not _REL_PATH.match(value):
        raise ArtifactError(f"unsafe path {value!r}: only letters, digits, '.', '_', '-' and '/' are allowed",
                            where=where)
    parts = value.split("/")
    if value.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ArtifactError(f"unsafe path {value!r}: absolute, empty or '..' segments are refused", where=where)
    return str(PurePosixPath(value))


def ensure_inside(root: Path, path: Path, *, where: str | None = None) -> Path:
    """``path`` resolved, after checking it (and every symlink on the way) stays under ``root``.

    Raises:
        ArtifactError: the path leaves ``root`` (through ``..`` or a symlink).
    """
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise ArtifactError(f"path leaves the store (resolves to {real})", where=where or str(path))
    return real


def no_symlinks_below(root: Path, path: Path, *, where: str | None = None) -> None:
    """Refuse ``path`` if it or any folder between ``root`` and it is a symlink.

    Raises:
        ArtifactError: naming the symlink.
    """
    current = path
    while True:
        if os.path.islink(current):
            raise ArtifactError("symlinks are not allowed inside the store", where=where or str(current))
        if current == root or current.parent == current:
            return
        current = current.parent


__all__ = ["check_alias", "check_relpath", "ensure_inside", "no_symlinks_below"]
