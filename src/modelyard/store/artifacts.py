"""Content-addressed artifact directories under ``<store>/artifacts/<aa>/<digest>/``.

A stage writes files into a staging directory (:meth:`ArtifactStore.staging`), then
:meth:`ArtifactStore.publish` hashes them, writes ``manifest.json`` and renames the
directory into place in one step: a killed process leaves only a staging directory,
never a partial artifact. Loads verify every hash.

In an encrypted store (``store/crypto.py``) staging folders are in memory
(``store/plaintext.py``), ``publish`` seals every file with AES-256-GCM into a folder
that is renamed into place the same way, and :meth:`ArtifactStore.path` opens an
artifact into the process's private plaintext folder and verifies the plaintext hashes
there: stages see plain files either way.
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
from modelyard.core.manifest import MANIFEST_NAME, Manifest, build_manifest, looks_like_pickle, verify_tree
from modelyard.core.refs import ArtifactRef, make_ref
from modelyard.store import tables
from modelyard.store.crypto import MAGIC, StoreCipher
from modelyard.store.engine import with_retry
from modelyard.store.paths import ensure_inside, no_symlinks_below
from modelyard.store.plaintext import PlaintextArea

# Weights files are opened by native loaders; one that holds a pickle (or a torch.save zip) is refused
# on publish and on load, whatever its name says.
_WEIGHT_SUFFIXES = (".safetensors",)


class ArtifactStore:
    """Files of artifacts on disk plus their rows in the ``artifacts`` table."""

    def __init__(self, root: Path, engine: Engine, *, cipher: StoreCipher | None = None,
                 plaintext: PlaintextArea | None = None) -> None:
        self.root = root / "artifacts"
        self.engine = engine
        self.cipher = cipher
        self.plaintext = plaintext
        if (cipher is None) != (plaintext is None):
            raise ValueError("an encrypted store needs both a cipher and a plaintext area")
        # Sealed files are written here and renamed into `artifacts/` (same filesystem).
        self.sealed_tmp = root / "tmp"
        # Plaintext scratch (staging, stages' temp folders): in memory for an encrypted store.
        self.tmp = plaintext.staging_dir if plaintext is not None else self.sealed_tmp
        self.root.mkdir(parents=True, exist_ok=True)
        self.sealed_tmp.mkdir(parents=True, exist_ok=True)

    @property
    def encrypted(self) -> bool:
        """True when artifact files are sealed with AES-256-GCM on disk."""
        return self.cipher is not None

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
        for rel in manifest.files:
            if rel.lower().endswith(_WEIGHT_SUFFIXES):
                _check_weights_file(staging / rel, where=rel)
        artifact_id = manifest.digest
        atomic_write_text(staging / MANIFEST_NAME, manifest.to_json())
        target = self._dir(artifact_id)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self._seal(staging, artifact_id) if self.cipher is not None else staging
            # Same filesystem (both under the store root): the rename is atomic, so readers
            # see either no artifact or all of it.
            try:
                os.rename(source, target)
            except OSError:
                if not target.exists():  # pragma: no cover - genuine I/O failure
                    raise
                # A concurrent publisher of the same content won the race; ours is discarded.
                if source != staging:
                    shutil.rmtree(source, ignore_errors=True)
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

        In an encrypted store this is a private plaintext copy (decrypted once per process,
        its hashes checked on every call with ``verify``).

        Raises:
            NotFoundError: no such artifact, or it was garbage-collected.
            ArtifactError: a file is missing, extra, changed, pickle-based, outside the store
                (symlink), or cannot be decrypted.
        """
        artifact_id = ref if isinstance(ref, str) else ref.id
        target = self.stored_dir(artifact_id)
        if self.cipher is None:
            if (target / MANIFEST_NAME).is_file() and _sealed(target / MANIFEST_NAME):
                raise ArtifactError("artifact is encrypted but this store has no encryption settings",
                                    where=str(target), hint="restore encryption.json and set the key")
            if verify:
                _verify_loadable(target, artifact_id)
            return target
        opened = self._open_sealed(target, artifact_id)
        if verify:
            _verify_loadable(opened, artifact_id)
        return opened

    def stored_dir(self, artifact_id: str) -> Path:
        """The on-disk folder of an artifact (sealed files in an encrypted store), checked to be inside.

        Raises:
            NotFoundError: no such folder.
            ArtifactError: a bad id, or the folder (or a parent) is a symlink out of the store.
        """
        target = self._dir(artifact_id)
        no_symlinks_below(self.root, target, where=str(target))
        if not target.is_dir():
            raise NotFoundError(self._missing_message(artifact_id), where=str(self.root))
        ensure_inside(self.root, target)
        return target

    def _missing_message(self, artifact_id: str) -> str:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.artifacts.c.deleted_at)
                               .where(tables.artifacts.c.id == artifact_id)).first()
        if row is not None and row.deleted_at:
            return f"artifact {artifact_id[:12]} was garbage-collected at {row.deleted_at}"
        return f"artifact {artifact_id[:12]} not found"

    def _seal(self, staging: Path, artifact_id: str) -> Path:
        """Encrypt every file of ``staging`` (manifest included) into a fresh folder next to the artifacts."""
        assert self.cipher is not None
        sealed = Path(tempfile.mkdtemp(prefix="seal-", dir=self.sealed_tmp))
        try:
            for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                rel = path.relative_to(staging).as_posix()
                out = sealed / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                self.cipher.encrypt_file(path, out, associated=f"{artifact_id}/{rel}")
        except BaseException:
            shutil.rmtree(sealed, ignore_errors=True)
            raise
        return sealed

    def _open_sealed(self, target: Path, artifact_id: str) -> Path:
        """Decrypt ``target`` into this process's plaintext folder (once) and return that copy."""
        assert self.cipher is not None and self.plaintext is not None
        opened = self.plaintext.decrypted_dir / artifact_id
        if opened.is_dir():
            return opened
        work = Path(tempfile.mkdtemp(prefix="open-", dir=self.plaintext.decrypted_dir))
        try:
            for path in sorted(target.rglob("*")):
                if path.is_symlink():
                    raise ArtifactError("symlinks are not allowed inside an artifact", where=str(path))
                if not path.is_file():
                    continue
                rel = path.relative_to(target).as_posix()
                out = work / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                self.cipher.decrypt_file(path, out, associated=f"{artifact_id}/{rel}")
            verify_tree(work, expected_id=artifact_id)
            try:
                os.rename(work, opened)
            except OSError:
                if not opened.is_dir():  # pragma: no cover - genuine I/O failure
                    raise
                shutil.rmtree(work, ignore_errors=True)  # another thread opened it first
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return opened

    def remove_files(self, artifact_id: str) -> int:
        """Free the disk of one artifact (garbage collection); returns the bytes freed.

        The folder is first renamed out of ``artifacts/`` (atomic), then deleted, so a
        reader sees the whole artifact or none of it. The database row stays, marked deleted.
        """
        target = self._dir(artifact_id)
        freed = 0
        if target.is_dir():
            no_symlinks_below(self.root, target, where=str(target))
            freed = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            trash = Path(tempfile.mkdtemp(prefix="gc-", dir=self.sealed_tmp))
            os.rename(target, trash / artifact_id)
            shutil.rmtree(trash, ignore_errors=True)
        if self.plaintext is not None:
            shutil.rmtree(self.plaintext.decrypted_dir / artifact_id, ignore_errors=True)
        now = datetime.now(UTC).isoformat()
        with_retry(self.engine, lambda conn: conn.execute(
            tables.artifacts.update().where(tables.artifacts.c.id == artifact_id).values(deleted_at=now)))
        return freed

    def manifest(self, ref: ArtifactRef | str) -> Manifest:
        """The verified manifest of an artifact."""
        return verify_tree(self.path(ref, verify=False), expected_id=ref if isinstance(ref, str) else ref.id)

    def ids(self, *, include_deleted: bool = False) -> list[str]:
        """Every recorded artifact id."""
        query = select(tables.artifacts.c.id)
        if not include_deleted:
            query = query.where(tables.artifacts.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars().all())

    def children(self, artifact_id: str) -> list[tuple[str, str]]:
        """(child id, relation) pairs of an artifact."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.lineage.c.child_id, tables.lineage.c.relation)
                                .where(tables.lineage.c.parent_id == artifact_id)).all()
        return [(r.child_id, r.relation) for r in rows]

    def row(self, artifact_id: str) -> dict[str, Any] | None:
        """The artifact's database row (meta decoded), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.artifacts).where(tables.artifacts.c.id == artifact_id)).first()
        if row is None:
            return None
        out = row._asdict()
        out["meta"] = json.loads(out["meta"] or "{}")
        return out

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


def _sealed(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def _verify_loadable(folder: Path, artifact_id: str) -> Manifest:
    """Every hash, then no weights file that is really a pickle (a forged manifest could list one)."""
    manifest = verify_tree(folder, expected_id=artifact_id)
    for rel in manifest.files:
        if rel.lower().endswith(_WEIGHT_SUFFIXES):
            _check_weights_file(folder / rel, where=f"{folder}/{rel}")
    return manifest


def _check_weights_file(path: Path, *, where: str) -> None:
    """Refuse a ``.safetensors`` file that is a pickle (any protocol), a zip, or anything else.

    A positive check, not a blacklist: safetensors starts with an 8-byte little-endian
    header length followed by that many bytes of JSON (``{``…); protocol-0 pickles have no
    magic number to spot, but they cannot pass this.

    Raises:
        ArtifactError: naming the file.
    """
    if looks_like_pickle(path):
        raise ArtifactError("weights file holds a pickle or a torch.save zip, not safetensors: refused", where=where)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
    length = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    if len(head) < 9 or not 2 <= length <= size - 8 or head[8:9] != b"{":
        raise ArtifactError("weights file is not in safetensors format (bad header): refused", where=where)


def _link(conn: Any, run_id: str, artifact_id: str, role: str) -> None:
    ra = tables.run_artifacts
    exists = conn.execute(select(ra.c.run_id).where(ra.c.run_id == run_id, ra.c.artifact_id == artifact_id,
                                                    ra.c.role == role)).first()
    if not exists:
        conn.execute(insert(ra).values(run_id=run_id, artifact_id=artifact_id, role=role))
