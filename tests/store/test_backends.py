"""One test class for every store back end: SQLite always, PostgreSQL when available (see conftest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError

from modelyard.core.errors import AuthError, NotFoundError, StoreError
from modelyard.core.refs import ModelRef
from modelyard.store import open_store, tables
from modelyard.store.gc import collect_garbage
from modelyard.store.migrations import LATEST, drop_audit_guard
from tests.store.conftest import Backend

HERE = Path(__file__).resolve().parent


def _publish(store, text: str) -> ModelRef:  # type: ignore[no-untyped-def]
    with store.artifacts.staging() as folder:
        (folder / "weights.txt").write_text(text)
        return ModelRef(id=store.artifacts.publish(folder, kind="model").id)


class TestStoreBackend:
    """The behaviour every back end must show."""

    def test_new_store_has_the_current_schema(self, backend: Backend) -> None:
        with open_store(backend.root, url=backend.url) as store, store.engine.connect() as conn:
            inspector = inspect(conn)
            for table in tables.metadata.sorted_tables:
                columns = {c["name"] for c in inspector.get_columns(table.name)}
                assert columns == {c.name for c in table.columns}, table.name
            assert conn.execute(select(tables.schema_migrations.c.version)).scalars().all() == list(
                range(1, LATEST + 1))

    def test_versions_aliases_tags_delete(self, backend: Backend) -> None:
        with open_store(backend.root, url=backend.url) as store:
            refs = [_publish(store, f"model {i}") for i in range(3)]
            for ref in refs:
                store.models.register("digits", ref, tags={"team": "vision"})
            assert [v.version for v in store.models.versions("digits")] == [1, 2, 3]
            assert store.models.resolve("digits@v2").ref == refs[1]
            store.models.tag("digits", 2, set_tags={"stage": "candidate"}, remove=["team"], description="better")
            v2 = store.models.get("digits", 2)
            assert v2.tags == {"stage": "candidate"} and v2.description == "better"
            store.models.set_alias("digits", "staging", 3)
            with pytest.raises(StoreError, match="still staging"):
                store.models.delete("digits", 3)
            store.models.delete("digits", 3, force=True)
            with pytest.raises(NotFoundError, match="was deleted"):
                store.models.resolve("digits@v3")
            with pytest.raises(NotFoundError, match="no such alias"):
                store.models.resolve("digits@staging")
            assert store.models.resolve("digits").version == 2  # latest live version
            # Numbers are never reused after a delete.
            assert store.models.register("digits", refs[2]).version == 4

    def test_promote_and_rollback_walk_back(self, backend: Backend) -> None:
        with open_store(backend.root, url=backend.url) as store:
            for i in range(3):
                store.models.register("m", _publish(store, str(i)))
            for version in (1, 2, 3):
                store.models.promote("m", version, gate={"passed": True})
            assert store.models.alias_stack("m", "production") == [1, 2, 3]
            assert store.models.rollback("m") == (3, 2)
            assert store.models.rollback("m") == (2, 1)
            with pytest.raises(NotFoundError, match="no earlier version"):
                store.models.rollback("m")
            store.models.promote("m", 3, forced=True)
            assert store.models.rollback("m") == (3, 1)
            actions = [(e.action, e.outcome) for e in store.audit.entries()]
            assert actions.count(("model.promote", "forced")) == 1
            assert actions.count(("model.rollback", "ok")) == 3
            events = [e["event"] for e in store.models.history("m")]
            assert events.count("register") == 3 and events.count("alias rollback") == 3

    def test_audit_chain_catches_edit_delete_reorder_truncate(self, backend: Backend) -> None:
        with open_store(backend.root, url=backend.url) as store:
            ref = _publish(store, "x")
            store.models.register("m", ref, alias="staging")      # entries 1, 2
            store.models.promote("m", 1, forced=True)               # 3
            _token, info = store.keys.create("predict,read")       # 4
            store.keys.revoke(info.id)                              # 5
            store.audit.append(action="custom.event", target="t")   # 6
            assert store.audit.verify().ok and store.audit.count() == 6
            log = tables.audit_log
            with store.engine.connect() as conn:
                original = [r._asdict() for r in conn.execute(select(log).order_by(log.c.seq)).all()]
            # The database itself refuses edits and deletions…
            for statement in (update(log).where(log.c.seq == 3).values(outcome="ok"), delete(log)):
                with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
                    conn.execute(statement)
            assert store.audit.verify().ok
            # …so the attacks below first drop that guard, as someone holding the database could.
            with store.engine.begin() as conn:
                drop_audit_guard(conn)

            def reset() -> None:
                with store.engine.begin() as conn:
                    conn.execute(delete(log))
                    conn.execute(insert(log), original)

            attacks = {
                "edit": (lambda c: c.execute(update(log).where(log.c.seq == 3).values(outcome="ok")),
                         "entry 3: content does not match its hash"),
                "delete": (lambda c: c.execute(delete(log).where(log.c.seq == 2)),
                           "entries 2..2 are missing"),
                "reorder": (lambda c: [c.execute(update(log).where(log.c.seq == a).values(seq=b))
                                       for a, b in ((3, 100), (4, 3), (100, 4))],
                            "entry 3: does not follow"),
                "truncate": (lambda c: c.execute(delete(log).where(log.c.seq == 6)),
                             "head anchor names entry 6"),
            }
            for name, (attack, needle) in attacks.items():
                with store.engine.begin() as conn:
                    attack(conn)
                report = store.audit.verify()
                assert not report.ok, name
                assert any(needle in p for p in report.problems), (name, report.problems)
                reset()
            assert store.audit.verify().ok

    def test_api_keys(self, backend: Backend) -> None:
        with open_store(backend.root, url=backend.url) as store:
            token, info = store.keys.create(["predict"], expires="30d", name="web")
            assert token.startswith(f"yard_{info.id}_")
            checked = store.keys.verify(token)
            assert checked.scopes == ("predict",) and checked.allows("predict") and not checked.allows("admin")
            assert store.keys.get(info.id).last_used_at is not None
            with store.engine.connect() as conn:
                stored = conn.execute(select(tables.api_keys.c.secret_hash)).scalar()
            secret = token.rsplit("_", 1)[1]
            assert stored.startswith("$argon2id$") and secret not in stored
            for bad in ("", "yard_x", token[:-1] + ("A" if token[-1] != "A" else "B"),
                        f"yard_{'0' * 12}_{secret}", token + " "):
                with pytest.raises(AuthError, match="^invalid API key$"):
                    store.keys.verify(bad)
            store.keys.revoke(info.id)
            with pytest.raises(AuthError):
                store.keys.verify(token)
            expired, old = store.keys.create("read", expires="1m")
            with store.engine.begin() as conn:
                conn.execute(update(tables.api_keys).where(tables.api_keys.c.id == old.id)
                             .values(expires_at="2000-01-01T00:00:00+00:00"))
            with pytest.raises(AuthError):
                store.keys.verify(expired)
            assert {k.status for k in store.keys.list()} == {"revoked", "expired"}

    def test_gc_frees_deleted_versions_only(self, backend: Backend) -> None:
        with open_store(backend.root, url=backend.url) as store:
            keep, drop = _publish(store, "keep"), _publish(store, "drop")
            store.models.register("m", keep)
            store.models.register("m", drop)
            store.models.register("other", keep)
            store.models.delete("m", 1)  # its artifact is still other@v1: kept
            store.models.delete("m", 2)
            folder = store.artifacts.path(drop)
            on_disk = sum(p.stat().st_size for p in folder.iterdir())  # weights.txt (4 bytes) + manifest.json
            report = collect_garbage(store)
            assert report.artifacts == [drop.id]
            assert report.bytes_freed == on_disk and not folder.exists()
            with pytest.raises(NotFoundError, match="garbage-collected"):
                store.artifacts.path(drop)
            assert store.artifacts.path(keep).is_dir()
            assert store.audit.entries(action="store.gc")[0].details["artifacts"] == [drop.id]
            assert collect_garbage(store).artifacts == []

    def test_eight_processes_lose_nothing(self, backend: Backend, tmp_path: Path) -> None:
        workers, versions, batches = 8, 4, 3
        with open_store(backend.root, url=backend.url):
            pass  # migrate once, like a project that exists before its workers start
        start = tmp_path / "go"
        procs = [subprocess.Popen([sys.executable, str(HERE / "concurrent_writer.py"), str(backend.root), backend.url,
                                   str(w), str(versions), str(batches), str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for w in range(workers)]
        time.sleep(0.5)
        start.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert [r["errors"] for r in results] == [[]] * workers  # 0 lock errors surfaced
        numbers = sorted(v for r in results for v in r["versions"])
        assert numbers == list(range(1, workers * versions + 1))  # no lost or duplicated version
        with open_store(backend.root, url=backend.url) as store:
            with store.engine.connect() as conn:
                metric_rows = conn.execute(select(tables.metrics.c.id)).all()
            # 8 workers × 4 runs × 3 batches × 50 points each
            assert len(metric_rows) == workers * versions * batches * 50
            assert len(store.models.versions("shared")) == workers * versions
            assert store.audit.count() == 2 * workers * versions  # register + alias.set each
            assert store.audit.verify().ok

    def test_killed_mid_registration_leaves_nothing(self, backend: Backend) -> None:
        with open_store(backend.root, url=backend.url) as store:
            first = store.models.register("victim", _publish(store, "v1"), alias="production")
            artifact = _publish(store, "v2")
            entries_before = store.audit.count()
        proc = subprocess.Popen([sys.executable, str(HERE / "killed_registration.py"), str(backend.root), backend.url,
                                 artifact.id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "inside", proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)  # also closes the pipes
        with open_store(backend.root, url=backend.url) as store:
            assert [v.version for v in store.models.versions("victim")] == [first.version]
            assert store.models.resolve("victim@production").version == 1
            assert store.audit.count() == entries_before
            assert store.audit.verify().ok
            assert store.models.register("victim", artifact).version == 2
