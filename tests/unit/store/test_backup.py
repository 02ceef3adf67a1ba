"""Backup (SQLite backup API + artifacts), verification, and restore that never deletes a store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from modelyard.core.errors import StoreError
from modelyard.core.refs import ModelRef
from modelyard.store import open_store
from modelyard.store.backup import backup, restore, verify_backup


def _fill(store) -> ModelRef:  # type: ignore[no-untyped-def]
    run_id = store.runs.create(kind="train", name="m", config={"lr": 0.1})
    store.runs.log_metrics(run_id, [("loss", i, 1.0 / (i + 1)) for i in range(20)])
    with store.artifacts.staging() as folder:
        (folder / "weights.txt").write_text("w" * 1000)
        ref = ModelRef(id=store.artifacts.publish(folder, kind="model", run_id=run_id).id)
    store.models.register("m", ref, run_id=run_id, alias="production")
    return ref


def test_backup_verify_restore_round_trip(tmp_path: Path) -> None:
    with open_store(tmp_path / "live") as store:
        ref = _fill(store)
        report = backup(store, tmp_path / "bk")
        assert report.ok and report.artifacts == 1 and report.audit_entries == 2
        store.models.register("m", ref)  # written after the snapshot: not in the backup
        with pytest.raises(StoreError, match="not empty"):
            backup(store, tmp_path / "bk")
        assert store.audit.entries(action="store.backup")[0].outcome == "ok"
    assert verify_backup(tmp_path / "bk").ok
    # Verifying opens the snapshot read-only: it stays one self-contained file.
    assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == [
        "artifacts", "audit-head.json", "backup.json", "store.db"]
    restored = restore(tmp_path / "bk", tmp_path / "restored")
    assert restored.ok
    with open_store(tmp_path / "restored") as copy:
        assert [v.version for v in copy.models.versions("m")] == [1]
        assert copy.models.resolve("m@production").ref == ref
        assert copy.runs.metric_series(copy.models.get("m", 1).run_id or "", "loss")[0] == (0, 1.0)
        assert copy.artifacts.path(ref).is_dir()
        assert [e.action for e in copy.audit.entries()][-1] == "store.restore"
        assert copy.audit.verify().ok


def test_damaged_backups_are_caught_and_never_restored(tmp_path: Path) -> None:
    with open_store(tmp_path / "live") as store:
        ref = _fill(store)
        backup(store, tmp_path / "bk")
    weights = tmp_path / "bk" / "artifacts" / ref.id[:2] / ref.id / "weights.txt"
    weights.write_text("tampered")
    report = verify_backup(tmp_path / "bk")
    assert not report.ok and "weights.txt" in report.problems[0]
    with pytest.raises(StoreError, match="failed verification"):
        restore(tmp_path / "bk", tmp_path / "restored")
    assert not (tmp_path / "restored" / "store.db").exists()
    weights.write_text("w" * 1000)
    with sqlite3.connect(tmp_path / "bk" / "store.db") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")  # the append-only guard, as an attacker would
        conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1")
    assert "differs from the backup's record" in verify_backup(tmp_path / "bk").problems[0]


def test_restore_over_a_store_moves_it_aside(tmp_path: Path) -> None:
    with open_store(tmp_path / "live") as store:
        _fill(store)
        backup(store, tmp_path / "bk")
    with open_store(tmp_path / "target") as other:
        other.runs.create(kind="x", name="keep-me", config={})
    with pytest.raises(StoreError, match="a store exists here already"):
        restore(tmp_path / "bk", tmp_path / "target")
    restore(tmp_path / "bk", tmp_path / "target", force=True)
    aside = [p for p in (tmp_path / "target").iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1
    with open_store(aside[0]) as old:
        assert [r["name"] for r in old.runs.list()] == ["keep-me"]  # nothing was deleted
    with open_store(tmp_path / "target") as restored:
        assert restored.models.resolve("m@production").version == 1


def test_postgres_store_points_to_pg_dump(tmp_path: Path) -> None:
    from modelyard.store.backup import sqlite_path

    with pytest.raises(StoreError, match="pg_dump"):
        sqlite_path("postgresql://u:pw@localhost/db")
