"""Consistent backups of a SQLite store, verified, and restores from them.

``backup`` takes a snapshot of the database with SQLite's online backup API (readers
and writers may keep working: the copy is one consistent point in time, WAL
included), then copies the artifacts that snapshot knows. Artifacts are immutable and
content-addressed, so copying them after the snapshot is still consistent; ones
published later are simply not in it. Encrypted artifacts are copied sealed: a
backup needs the same key to be read. ``backup.json`` lists the database's sha256
and every artifact id; ``verify_backup`` re-checks all of it (and the audit chain)
and ``restore`` runs it before copying anything back.

A PostgreSQL store's database is backed up with PostgreSQL's own tools (``pg_dump``);
``backup`` refuses it rather than make a copy that is not a snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, select
from sqlalchemy.pool import NullPool

from modelyard.core.atomic import atomic_write_text, fsync_dir
from modelyard.core.errors import ArtifactError, NotFoundError, StoreError
from modelyard.core.hashing import sha256_file
from modelyard.core.manifest import MANIFEST_NAME, verify_tree
from modelyard.store import tables
from modelyard.store.audit import HEAD_FILE, AuditLog
from modelyard.store.crypto import ENCRYPTION_FILE, MAGIC, StoreCipher, read_settings

if TYPE_CHECKING:
    from modelyard.store.project import Store

BACKUP_JSON = "backup.json"
DB_NAME = "store.db"
FORMAT = "modelyard-backup"


@dataclass
class BackupReport:
    """What a backup holds, or what verifying one found."""

    path: Path
    artifacts: int = 0
    bytes: int = 0
    audit_entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///…`` URL.

    Raises:
        StoreError: not a SQLite file URL.
    """
    if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
        raise StoreError("backup and restore work on SQLite stores; back up PostgreSQL with pg_dump "
                         "and copy the artifacts folder", where=url.split("@")[-1])
    return Path(url.removeprefix("sqlite:///"))


def _snapshot(source: Path, target: Path) -> None:
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)  # the online backup API: one consistent snapshot, WAL pages included
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    finally:
        dst.close()
        src.close()


def _readonly_engine(db: Path) -> Engine:
    """Open a backup's database read-only: verifying a backup must not change it (no WAL switch)."""
    return create_engine(f"sqlite:///file:{db}?mode=ro&uri=true", poolclass=NullPool)


def _artifact_ids(db: Path) -> list[str]:
    engine = _readonly_engine(db)
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(select(tables.artifacts.c.id)
                                       .where(tables.artifacts.c.deleted_at.is_(None))).scalars().all())
    finally:
        engine.dispose()


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def backup(store: Store, dest: Path, *, actor: str | None = None) -> BackupReport:
    """Write a verified backup of ``store`` into the new (or empty) folder ``dest``.

    Raises:
        StoreError: a PostgreSQL store, or ``dest`` is not empty.
        ArtifactError: a source artifact is damaged (the backup is then incomplete and says so).
    """
    source_db = sqlite_path(store.url)
    if dest.exists() and any(dest.iterdir()):
        raise StoreError("backup folder is not empty", where=str(dest))
    dest.mkdir(parents=True, exist_ok=True)
    _snapshot(source_db, dest / DB_NAME)
    ids = _artifact_ids(dest / DB_NAME)
    report = BackupReport(path=dest)
    for artifact_id in ids:
        source = store.artifacts.stored_dir(artifact_id)
        target = dest / "artifacts" / artifact_id[:2] / artifact_id
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
        shutil.copytree(source, work / "a", symlinks=True)
        os.rename(work / "a", target)
        work.rmdir()
        report.artifacts += 1
        report.bytes += _tree_size(target)
    for name in (ENCRYPTION_FILE,):
        if (store.root / name).is_file():
            shutil.copy2(store.root / name, dest / name)
    # The head anchor of the snapshot, not the live one: appends after the snapshot are not in it.
    snapshot_audit = AuditLog(_readonly_engine(dest / DB_NAME))
    try:
        tail = snapshot_audit.entries(limit=1, newest_first=True)
    finally:
        snapshot_audit.engine.dispose()
    if tail:
        atomic_write_text(dest / HEAD_FILE, json.dumps({"seq": tail[0].seq, "hash": tail[0].hash}) + "\n")
    info = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "source": str(store.root),
            "db_sha256": sha256_file(dest / DB_NAME), "artifacts": ids,
            "encrypted": (store.root / ENCRYPTION_FILE).is_file()}
    atomic_write_text(dest / BACKUP_JSON, json.dumps(info, indent=2) + "\n")
    fsync_dir(dest)
    verified = verify_backup(dest, cipher=store.artifacts.cipher)
    report.audit_entries = verified.audit_entries
    report.problems = verified.problems
    store.audit.append(actor=actor, action="store.backup", target=str(dest),
                       outcome="ok" if report.ok else "failed",
                       details={"artifacts": report.artifacts, "bytes": report.bytes, "problems": report.problems[:5]})
    return report


def verify_backup(path: Path, *, cipher: StoreCipher | None = None) -> BackupReport:
    """Check a backup: database hash and integrity, every artifact's files, the audit chain.

    Encrypted artifacts are decrypted (in memory-backed scratch) and hashed when ``cipher``
    is given; without it only their presence and header are checked.
    """
    report = BackupReport(path=path)
    try:
        info = json.loads((path / BACKUP_JSON).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        report.problems.append(f"unreadable {BACKUP_JSON}: {exc}")
        return report
    db = path / DB_NAME
    if not db.is_file() or sha256_file(db) != info.get("db_sha256"):
        report.problems.append("store.db is missing or differs from the backup's record")
        return report
    with sqlite3.connect(db) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if check != "ok":
        report.problems.append(f"store.db integrity check: {check}")
    settings = read_settings(path)
    if settings is not None and cipher is not None and cipher.key_id != settings.key_id:
        report.problems.append("the given key is not the one this backup was encrypted with")
        cipher = None
    for artifact_id in info.get("artifacts", []):
        folder = path / "artifacts" / artifact_id[:2] / artifact_id
        try:
            if not folder.is_dir() or folder.is_symlink():
                raise NotFoundError("missing")
            if settings is None:
                verify_tree(folder, expected_id=artifact_id)
            elif cipher is not None:
                _verify_sealed(folder, artifact_id, cipher)
            elif not (folder / MANIFEST_NAME).is_file() or not _sealed(folder / MANIFEST_NAME):
                raise ArtifactError("not sealed")
        except (ArtifactError, NotFoundError) as exc:
            report.problems.append(f"artifact {artifact_id[:12]}: {exc}")
            continue
        report.artifacts += 1
        report.bytes += _tree_size(folder)
    audit = AuditLog(_readonly_engine(db), head_path=path / HEAD_FILE)
    try:
        chain = audit.verify()
    finally:
        audit.engine.dispose()
    report.audit_entries = chain.entries
    report.problems += [f"audit: {p}" for p in chain.problems]
    return report


def _sealed(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def _verify_sealed(folder: Path, artifact_id: str, cipher: StoreCipher) -> None:
    from modelyard.store.plaintext import plaintext_base

    work = Path(tempfile.mkdtemp(prefix="yard-verify-", dir=plaintext_base()))
    try:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                rel = path.relative_to(folder).as_posix()
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                cipher.decrypt_file(path, work / rel, associated=f"{artifact_id}/{rel}")
        verify_tree(work, expected_id=artifact_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def restore(backup_path: Path, root: Path, *, force: bool = False, actor: str | None = None) -> BackupReport:
    """Verify a backup, then make ``root`` a copy of it (and audit the restore there).

    With ``force`` an existing store at ``root`` is moved aside to ``root/replaced-<time>/``
    first, never deleted.

    Raises:
        StoreError: the backup fails verification, or ``root`` holds a store and ``force`` is not set.
    """
    from modelyard.store.crypto import open_cipher

    cipher = open_cipher(backup_path) if read_settings(backup_path) is not None else None
    report = verify_backup(backup_path, cipher=cipher)
    if not report.ok:
        raise StoreError(f"backup failed verification: {report.problems[0]}", where=str(backup_path))
    existing = [n for n in (DB_NAME, "artifacts", ENCRYPTION_FILE, HEAD_FILE) if (root / n).exists()]
    if existing and not force:
        raise StoreError("a store exists here already", where=str(root),
                         hint="restore into a new folder, or pass --force to move the current one aside")
    root.mkdir(parents=True, exist_ok=True)
    if existing:
        aside = root / f"replaced-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        aside.mkdir()
        for name in [*existing, f"{DB_NAME}-wal", f"{DB_NAME}-shm"]:
            if (root / name).exists():
                os.rename(root / name, aside / name)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=root))
    try:
        _snapshot(backup_path / DB_NAME, staging / DB_NAME)
        if (backup_path / "artifacts").is_dir():
            shutil.copytree(backup_path / "artifacts", staging / "artifacts", symlinks=True)
        for name in (ENCRYPTION_FILE, HEAD_FILE):
            if (backup_path / name).is_file():
                shutil.copy2(backup_path / name, staging / name)
        for child in staging.iterdir():
            os.rename(child, root / child.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(root)
    from modelyard.store.project import open_store

    with open_store(root, url=f"sqlite:///{root / DB_NAME}") as restored:
        restored.audit.append(actor=actor, action="store.restore", target=str(root),
                              details={"from": str(backup_path), "artifacts": report.artifacts,
                                       "moved_aside": existing})
    return report


__all__ = ["BackupReport", "backup", "restore", "sqlite_path", "verify_backup"]
