"""store: runs, params, metric series, artifacts, registry, migrations (SQLite)."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from modelyard.core.errors import ArtifactError, ConfigError, NotFoundError, StoreError
from modelyard.core.refs import ModelRef
from modelyard.store import open_store
from modelyard.store.context import stage_run
from modelyard.store.migrations import LATEST


def _publish(store, text: str = "hello", kind: str = "model", **kw):  # type: ignore[no-untyped-def]
    with store.artifacts.staging() as folder:
        (folder / "a.txt").write_text(text)
        return store.artifacts.publish(folder, kind=kind, **kw)


def test_wal_mode_and_schema_version(store) -> None:  # type: ignore[no-untyped-def]
    db = store.root / "store.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == LATEST


def test_run_lifecycle_and_metrics(store) -> None:  # type: ignore[no-untyped-def]
    run_id = store.runs.create(kind="train", name="m", config={"lr": 0.1})
    store.runs.log_params(run_id, {"a": 1, "b": [1, 2]})
    store.runs.log_metrics(run_id, [("loss", 1, 0.5), ("loss", 2, 0.25), ("loss", 3, math.nan), ("acc", 2, 0.9)])
    store.runs.finish(run_id, status="finished", summary={"acc": 0.9})
    run = store.runs.get(run_id[:6])
    assert run["status"] == "finished" and run["config"] == {"lr": 0.1} and run["summary"] == {"acc": 0.9}
    assert run["ended_at"] and run["host"]["cpu_count"] >= 1 and "numpy" in run["packages"]
    assert store.runs.params(run_id) == {"a": 1, "b": [1, 2]}
    series = store.runs.metric_series(run_id, "loss")
    assert series[:2] == [(1, 0.5), (2, 0.25)] and math.isnan(series[2][1])
    assert store.runs.metric_keys(run_id) == ["acc", "loss"]
    with pytest.raises(NotFoundError, match="not found"):
        store.runs.get("doesnotexist")


def test_stage_run_records_failure(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="boom"), stage_run(store, kind="data", name="x", config={}) as ctx:
        ctx.metrics.log(1, {"rows": 3.0})
        raise ValueError("boom")
    run = store.runs.get(ctx.run_id)
    assert run["status"] == "failed"
    assert "ValueError: boom" in run["error"]
    assert store.runs.metric_series(ctx.run_id, "rows") == [(1, 3.0)]  # flushed before failing


def test_artifacts_are_content_addressed_and_verified(store) -> None:  # type: ignore[no-untyped-def]
    ref = _publish(store, "hello")
    again = _publish(store, "hello")
    assert ref == again
    assert _publish(store, "other").id != ref.id
    path = store.artifacts.path(ref)
    assert (path / "a.txt").read_text() == "hello"
    (path / "a.txt").write_text("tampered")
    with pytest.raises(ArtifactError, match=r"a.txt.*sha256 mismatch"):
        store.artifacts.path(ref)
    with pytest.raises(ArtifactError, match="invalid artifact id"):
        store.artifacts.path("../../etc")
    assert list(store.artifacts.tmp.iterdir()) == []  # staging folders cleaned up


def test_failed_stage_leaves_no_artifact(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), store.artifacts.staging() as folder:
        (folder / "half.bin").write_bytes(b"x" * 10)
        raise RuntimeError("killed while writing")
    assert list(store.artifacts.root.rglob("*")) == []
    assert list(store.artifacts.tmp.iterdir()) == []


def test_lineage_and_run_links(store) -> None:  # type: ignore[no-untyped-def]
    run_id = store.runs.create(kind="train", name="m", config={})
    data = _publish(store, "data", kind="dataset")
    model = _publish(store, "model", run_id=run_id, parents=[data.id], relation="trained_from")
    store.artifacts.link_input(run_id, data)
    assert store.artifacts.parents(model.id) == [(data.id, "trained_from")]
    assert store.runs.artifacts(run_id) == [(model.id, "model")]
    assert store.runs.artifacts(run_id, role="input") == [(data.id, "dataset")]
    assert store.artifacts.resolve_prefix(model.id[:8]) == model


def test_registry_versions_aliases_and_resolution(store) -> None:  # type: ignore[no-untyped-def]
    a, b = ModelRef(_publish(store, "a").id), ModelRef(_publish(store, "b").id)
    v1 = store.models.register("digits", a, alias="staging", metrics={"test/accuracy": 0.9})
    v2 = store.models.register("digits", b)
    assert (v1.version, v2.version) == (1, 2)
    assert store.models.resolve("digits@staging").ref == a
    assert store.models.resolve("digits@v2").ref == b
    assert store.models.resolve("digits@2").ref == b
    assert store.models.resolve("digits").version == 2
    assert store.models.set_alias("digits", "staging", 2) == 1
    assert store.models.resolve("digits@staging").version == 2
    assert store.models.get("digits", 1).metrics == {"test/accuracy": 0.9}
    assert store.models.list_models() == [{"name": "digits", "versions": 2, "latest": 2, "aliases": {"staging": 2}}]
    with pytest.raises(NotFoundError, match="no such alias"):
        store.models.resolve("digits@production")
    with pytest.raises(NotFoundError):
        store.models.resolve("digits@v9")
    with pytest.raises(ConfigError):
        store.models.resolve("../digits@v1")
    with pytest.raises(ConfigError, match="looks like a version"):
        store.models.register("digits", a, alias="v3")


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    with open_store(tmp_path / "s") as first:
        run_id = first.runs.create(kind="x", name="y", config={})
    with open_store(tmp_path / "s") as second:
        assert second.runs.get(run_id)["name"] == "y"


def test_store_written_by_newer_schema_is_refused(tmp_path: Path) -> None:
    with open_store(tmp_path / "s"):
        pass
    with sqlite3.connect(tmp_path / "s" / "store.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'future')", (LATEST + 1,))
    with pytest.raises(StoreError, match="newer than this modelyard"):
        open_store(tmp_path / "s")


def test_unsupported_url(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported store URL"):
        open_store(tmp_path, url="mysql://x")


def test_register_with_unknown_run_is_a_clear_error(store) -> None:  # type: ignore[no-untyped-def]
    ref = ModelRef(_publish(store, "a").id)
    with pytest.raises(NotFoundError, match="run 'nope' not found"):
        store.models.register("m", ref, run_id="nope")
    assert store.models.list_models() == [] and store.audit.count() == 0


def test_promotion_refused_when_production_moved_since_the_gate(store) -> None:  # type: ignore[no-untyped-def]
    for text in ("a", "b", "c"):
        store.models.register("m", ModelRef(_publish(store, text).id))
    store.models.promote("m", 1)
    # The gate compared v3 against v1; meanwhile someone else promoted v2.
    store.models.promote("m", 2, expect=1)
    with pytest.raises(StoreError, match="moved to v2 while this change was being decided"):
        store.models.promote("m", 3, expect=1)
    assert store.models.resolve("m@production").version == 2
    # expect=None: "the alias must not exist yet".
    assert store.models.promote("m", 3, alias="canary", expect=None) is None
    with pytest.raises(StoreError, match="canary moved to v3 .*expected -"):
        store.models.promote("m", 1, alias="canary", expect=None)


@pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "x" * 129])
def test_bad_key_names_are_refused(store, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="128 printable characters"):
        store.keys.create("read", name=name)
    assert store.keys.list() == [] and store.audit.count() == 0


def test_a_constraint_failure_is_not_retried_as_a_collision(store) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from modelyard.store import tables

    calls = []

    def work(conn, record):  # type: ignore[no-untyped-def]
        calls.append(1)
        record(action="test.write", target="x")
        conn.execute(insert(tables.params).values(run_id="no-such-run", key="k", value="v"))  # foreign key fails

    with pytest.raises(StoreError, match="refused by the database.*FOREIGN KEY"):
        store.audit.transact(work)
    assert len(calls) == 1 and store.audit.count() == 0  # rolled back with the change, tried once
