"""Garbage collection: free the disk of deleted versions' artifacts and of what killed processes left.

Removed:

- model artifacts named only by deleted versions — unless a live version still needs
  them (the same artifact registered again, or a live compressed child whose lineage
  leads back to them);
- artifact folders with no database row (a process killed between the rename into
  ``artifacts/`` and the insert), older than the grace period;
- staging and sealing folders in ``tmp/`` older than the grace period.

Datasets and reports are kept: they are small next to models and other runs may use
them. Every collection is audited with what it freed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from modelyard.store import tables

if TYPE_CHECKING:
    from modelyard.store.project import Store

GRACE_SECONDS = 3600.0


@dataclass
class GcReport:
    """What a collection freed (or would free, in a dry run)."""

    artifacts: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stale_temp: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _ancestors(store: Store, artifact_ids: set[str]) -> set[str]:
    seen: set[str] = set()
    frontier = list(artifact_ids)
    while frontier:
        current = frontier.pop()
        for parent, _relation in store.artifacts.parents(current):
            if parent not in seen:
                seen.add(parent)
                frontier.append(parent)
    return seen


def unreferenced_models(store: Store) -> list[str]:
    """Artifact ids of deleted versions that nothing live needs any more."""
    mv, art = tables.model_versions, tables.artifacts
    with store.engine.connect() as conn:
        rows = conn.execute(select(mv.c.artifact_id, mv.c.deleted_at)).all()
        gone = set(conn.execute(select(art.c.id).where(art.c.deleted_at.is_not(None))).scalars().all())
    live = {r.artifact_id for r in rows if r.deleted_at is None}
    deleted = {r.artifact_id for r in rows if r.deleted_at is not None}
    needed = live | _ancestors(store, live)
    return sorted(deleted - needed - gone)


def collect_garbage(store: Store, *, dry_run: bool = False, grace_seconds: float = GRACE_SECONDS,
                    actor: str | None = None) -> GcReport:
    """Free what nothing needs; returns what was (or would be) freed."""
    report = GcReport(dry_run=dry_run)
    now = time.time()
    for artifact_id in unreferenced_models(store):
        folder = store.artifacts.root / artifact_id[:2] / artifact_id
        size = _size(folder) if folder.is_dir() else 0
        report.artifacts.append(artifact_id)
        report.bytes_freed += size
        if not dry_run:
            store.artifacts.remove_files(artifact_id)
    known = set(store.artifacts.ids(include_deleted=True))
    for shard in sorted(p for p in store.artifacts.root.iterdir() if p.is_dir() and not p.is_symlink()):
        for folder in sorted(shard.iterdir()):
            if folder.name not in known and now - folder.stat().st_mtime > grace_seconds:
                report.orphans.append(folder.name)
                report.bytes_freed += _size(folder)
                if not dry_run:
                    shutil.rmtree(folder, ignore_errors=True)
    for folder in sorted(store.artifacts.sealed_tmp.iterdir()):
        if now - folder.stat().st_mtime > grace_seconds:
            report.stale_temp.append(folder.name)
            report.bytes_freed += _size(folder) if folder.is_dir() else folder.stat().st_size
            if not dry_run:
                if folder.is_dir() and not folder.is_symlink():
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    folder.unlink(missing_ok=True)
    if not dry_run:
        store.audit.append(actor=actor, action="store.gc", target=str(store.root),
                           details={"artifacts": report.artifacts, "orphans": report.orphans,
                                    "stale_temp": len(report.stale_temp), "bytes_freed": report.bytes_freed})
    return report


__all__ = ["GRACE_SECONDS", "GcReport", "collect_garbage", "unreferenced_models"]
