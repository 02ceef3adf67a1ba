"""A store written by schema 1 (tests/fixtures/store-schema1) opens, migrates and keeps every row."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from modelyard.core.errors import NotFoundError
from modelyard.store import open_store, tables
from modelyard.store.migrations import LATEST

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "store-schema1"

# What the fixture holds (made by schema 1: two `yard run`s of the tiny iris recipe, then aliases).
ROW_COUNTS = {"runs": 8, "metrics": 80, "model_versions": 2, "aliases": 2}


def _counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ROW_COUNTS}


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    with sqlite3.connect(root / "store.db") as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 1
    return root


def test_schema1_store_migrates_and_keeps_its_data(old_store: Path) -> None:
    before = _counts(old_store / "store.db")
    assert before == ROW_COUNTS
    with open_store(old_store) as store:
        with store.engine.connect() as conn:
            versions = conn.execute(select(tables.schema_migrations.c.version)).scalars().all()
            inspector = inspect(conn)
            for table in tables.metadata.sorted_tables:  # the same shape as a new store
                assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}
        assert sorted(versions) == list(range(1, LATEST + 1))
        assert store.models.list_models() == [
            {"name": "tiny-iris", "versions": 2, "latest": 2, "aliases": {"production": 1, "staging": 2}}]
        staging = store.models.resolve("tiny-iris@staging")
        assert staging.version == 2 and staging.metrics["test/accuracy"] == 0.9
        assert store.artifacts.path(staging.ref).joinpath("spec.json").is_file()  # hashes still verify
        assert store.runs.get(staging.run_id)["status"] == "finished"
        # Aliases set before alias history existed still roll back correctly after a new move.
        with pytest.raises(NotFoundError, match="no earlier version"):
            store.models.rollback("tiny-iris")
        store.models.promote("tiny-iris", 2, gate={"passed": True})
        assert store.models.rollback("tiny-iris") == (2, 1)
        assert store.audit.verify().ok and store.audit.count() == 2
    after = _counts(old_store / "store.db")
    assert after == ROW_COUNTS


def test_migration_is_idempotent_across_reopens(old_store: Path) -> None:
    for _ in range(2):
        with open_store(old_store) as store, store.engine.connect() as conn:
            assert conn.execute(select(tables.schema_migrations.c.version)).scalars().all() == list(
                range(1, LATEST + 1))
    assert _counts(old_store / "store.db") == ROW_COUNTS
