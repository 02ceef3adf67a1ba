"""Content hashes (sha256) for files, bytes and directory trees."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(file_hashes: Mapping[str, str]) -> str:
    """Hash a mapping of relative path -> sha256 into one digest, independent of order.

    This names a directory by its content: the same files with the same bytes give
    the same digest, whatever their timestamps.
    """
    lines: Iterable[str] = (f"{name}\0{digest}\n" for name, digest in sorted(file_hashes.items()))
    return sha256_bytes("".join(lines).encode())
