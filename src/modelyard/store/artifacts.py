"""Content-addressed artifact directories under ``<store>/artifacts/<aa>/<digest>/``.

A stage writes files into a staging directory (:meth:`ArtifactStore.staging`), then
:meth:`ArtifactStore.publish` hashes them, writes ``manifest.json`` and renames the
directory into place in one step: a killed process leaves only a staging directory,
never a partial artifact. Loads verify every hash.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from modelyard.core.atomic import atomic_write_text, fsync_dir
from modelyard.core.errors import ArtifactError, NotFoundError
from modelyard.core.manifest import MANIFEST_NAME, Manifest, build_manifest, verify_tree
from modelyard.core.refs import ArtifactRef, make_ref
from modelyard.store import tables
from modelyard.store.engine import with_retry


class ArtifactStore:
    """Files of artifacts on disk plus their rows in the ``artifacts`` table."""

    def __init__(self, root: Path, engine: Engine) -> None:
        self.root = root / "artifacts"
        self.tmp = root / "tmp"
        self.engine = engine
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh directory to write an artifact into; removed afterwards unless published."""
        path = Path(tempfile.mkdtemp(prefix="stage-", dir=self.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _dir(self, artifact_id: str) -> Path:
        if len(artifact_id) != 64 or any(c not in "0123456789abcdef" for c in artifact_id):
            raise ArtifactError(f"invalid artifact id {artifact_id!r}")
        return self.root / artifact_id[:2] / artifact_id

    def publish(self, staging: Path, *, kind: str, run_id: str | None = None,
                parents: list[str] | None = None, meta: dict[str, Any] | None = None,
                relation: str = "derived_from") -> ArtifactRef:
        """Hash ``staging``, move it into the store and record it; returns its reference.

        Publishing identical content twice returns the existing artifact.
        """
        manifest = build_manifest(staging, kind=kind, parents=parents, meta=meta)
        artifact_id = manifest.digest
        atomic_write_text(staging / MANIFEST_NAME, manifest.to_json())
        target = self._dir(artifact_id)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Same filesystem (both under the store root): the rename is atomic, so readers
            # see either no artifact or all of it.
            try:
                os.rename(staging, target)
            except OSError:
                if not target.exists():  # pragma: no cover - genuine I/O failure
                    raise
                # A concurrent publisher of the same content won the race; ours is discarded.
            fsync_dir(target.parent)
        size = sum(info["size"] for info in manifest.files.values())

        def record(conn: Any) -> None:
            exists = conn.execute(select(tables.artifacts.c.id).where(tables.artifacts.c.id == artifact_id)).first()
            if not exists:
                conn.execute(insert(tables.artifacts).values(
                    id=artifact_id, kind=kind, size=size, run_id=run_id,
                    meta=json.dumps(manifest.meta, sort_keys=True, default=str),
                    created_at=datetime.now(UTC).isoformat()))
            for parent in parents or []:
                has = conn.execute(select(tables.lineage.c.parent_id).where(
                    tables.lineage.c.parent_id == parent, tables.lineage.c.child_id == artifact_id)).first()
                if not has:
                    conn.execute(insert(tables.lineage).values(parent_id=parent, child_id=artifact_id,
                                                               relation=relation))
            if run_id is not None:
                _link(conn, run_id, artifact_id, "output")

        with_retry(self.engine, record)
        return make_ref(artifact_id, kind)

    def link_input(self, run_id: str, ref: ArtifactRef) -> None:
        """Record that run ``run_id`` read artifact ``ref``."""
        with_retry(self.engine, lambda conn: _link(conn, run_id, ref.id, "input"))

    def path(self, ref: ArtifactRef | str, *, verify: bool = True) -> Path:
        """The directory of an artifact, after checking every file's sha256.

        Raises:
            NotFoundError: no such artifact.
            ArtifactError: a file is missing, extra, changed, or pickle-based.
        """
        artifact_id = ref if isinstance(ref, str) else ref.id
        target = self._dir(artifact_id)
        if not target.is_dir():
            raise NotFoundError(f"artifact {artifact_id[:12]} not found", where=str(self.root))
        if verify:
            verify_tree(target, expected_id=artifact_id)
        return target

    def manifest(self, ref: ArtifactRef | str) -> Manifest:
        """The verified manifest of an artifact."""
        return verify_tree(self.path(ref, verify=False), expected_id=ref if isinstance(ref, str) else ref.id)

    def kind_of(self, artifact_id: str) -> str:
        """The recorded kind of ``artifact_id``."""
        with self.engine.connect() as conn:
            kind = conn.execute(select(tables.artifacts.c.kind).where(tables.artifacts.c.id == artifact_id)).scalar()
        if kind is None:
            raise NotFoundError(f"artifact {artifact_id[:12]} not found")
        return str(kind)

    def resolve_prefix(self, prefix: str) -> ArtifactRef:
        """The artifact whose id starts with ``prefix`` (at least 6 hex digits, unambiguous)."""
        prefix = prefix.lower()
        if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
            raise NotFoundError(f"{prefix!r} is not an artifact id (6+ hex digits)")
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.artifacts.c.id, tables.artifacts.c.kind)
                                .where(tables.artifacts.c.id.like(prefix + "%")).limit(2)).all()
        if not rows:
            raise NotFoundError(f"no artifact with id {prefix}…")
        if len(rows) > 1:
            raise NotFoundError(f"artifact id prefix {prefix} is ambiguous")
        return make_ref(rows[0].id, rows[0].kind)

    def parents(self, artifact_id: str) -> list[tuple[str, str]]:
        """(parent id, relation) pairs of an artifact."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.lineage.c.parent_id, tables.lineage.c.relation)
                                .where(tables.lineage.c.child_id == artifact_id)).all()
        return [(r.parent_id, r.relation) for r in rows]


def _link(conn: Any, run_id: str, artifact_id: str, role: str) -> None:
    ra = tables.run_artifacts
    exists = conn.execute(select(ra.c.run_id).where(ra.c.run_id == run_id, ra.c.artifact_id == artifact_id,
                                                    ra.c.role == role)).first()
    if not exists:
        conn.execute(insert(ra).values(run_id=run_id, artifact_id=artifact_id, role=role))
