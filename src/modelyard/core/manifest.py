"""Artifact manifests: the sha256 of every file, parents and metadata.

An artifact is a directory. ``manifest.json`` inside it lists every other file with
its size and sha256; the artifact's id is :func:`~modelyard.core.hashing.tree_digest`
of those hashes, so the same content always gets the same id.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.core.errors import ArtifactError
from modelyard.core.hashing import sha256_file, tree_digest

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
# Refused everywhere: formats whose loading can execute code.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib", ".ckpt")
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


@dataclass
class Manifest:
    """What an artifact directory holds."""

    kind: str
    files: dict[str, dict[str, Any]]
    parents: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    schema_version: int = SCHEMA_VERSION

    @property
    def digest(self) -> str:
        """The content id: a digest over file names and hashes only."""
        return tree_digest({name: info["sha256"] for name, info in self.files.items()})

    def to_json(self) -> str:
        """Serialise to stable JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str) -> Manifest:
        """Parse manifest JSON, naming ``where`` on error."""
        try:
            raw = json.loads(text)
            return cls(**raw)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ArtifactError(f"unreadable manifest: {exc}", where=where) from exc


def looks_like_pickle(path: Path) -> bool:
    """True if the file starts with a pickle protocol header or is a zip (torch.save).

    A safetensors file starts with its JSON header's length as 8 little-endian bytes; a
    length of 640, 896, 1152 or 1408 makes those bytes look like a pickle header
    (``\x80\x02``…``\x80\x05``). A file whose length prefix fits inside it and is followed by
    ``{`` is a safetensors header, not a pickle, so it is not flagged.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 2 <= header_len <= path.stat().st_size - 8:
            return False
    return head[:2] in _PICKLE_MAGIC or head[:4] == b"PK\x03\x04"


def _iter_files(root: Path) -> list[Path]:
    files = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                raise ArtifactError("symlinks are not allowed inside an artifact", where=str(path))
            files.append(path)
    return sorted(files)


def build_manifest(root: Path, *, kind: str, parents: list[str] | None = None,
                   meta: dict[str, Any] | None = None) -> Manifest:
    """Hash every file under ``root`` (except the manifest) into a :class:`Manifest`.

    Raises:
        ArtifactError: a file has a pickle-based suffix, or the tree holds a symlink.
    """
    files: dict[str, dict[str, Any]] = {}
    for path in _iter_files(root):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST_NAME:
            continue
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ArtifactError("pickle-based files are refused (use safetensors)", where=rel)
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return Manifest(kind=kind, files=files, parents=list(parents or []), meta=dict(meta or {}))


def read_manifest(root: Path) -> Manifest:
    """Read ``root/manifest.json``."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError("artifact has no manifest.json", where=str(root))
    return Manifest.from_json(path.read_text("utf-8"), where=str(path))


def verify_tree(root: Path, *, expected_id: str | None = None) -> Manifest:
    """Check every file against the manifest; refuse extra, missing or changed files.

    Raises:
        ArtifactError: naming the first file whose hash, presence or format is wrong.
    """
    manifest = read_manifest(root)
    seen = set()
    for path in _iter_files(root):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST_NAME:
            continue
        seen.add(rel)
        if rel not in manifest.files:
            raise ArtifactError("file not listed in the manifest", where=f"{root}/{rel}")
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ArtifactError("pickle-based files are refused", where=f"{root}/{rel}")
        actual = sha256_file(path)
        if actual != manifest.files[rel]["sha256"]:
            raise ArtifactError(
                f"sha256 mismatch (expected {manifest.files[rel]['sha256'][:12]}…, got {actual[:12]}…)",
                where=f"{root}/{rel}",
            )
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise ArtifactError("file listed in the manifest is missing", where=f"{root}/{missing[0]}")
    if expected_id is not None and manifest.digest != expected_id:
        raise ArtifactError(f"artifact digest {manifest.digest[:12]} does not match its id {expected_id[:12]}",
                            where=str(root))
    return manifest
