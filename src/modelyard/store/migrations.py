"""Numbered schema migrations. Each entry takes a connection inside a transaction.

Migrations 1 and 2 create tables from frozen copies (below, never edited), so a new
store and an old one migrated forward end in the same shape: a new store runs 1 then 2
…, an old one only the numbers it lacks. ``tests/fixtures/store-schema1`` is a store
written by schema 1; a test opens it and checks it migrates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
)

from modelyard.core.errors import StoreError
from modelyard.store import tables


def _schema1() -> MetaData:
    """The tables exactly as schema 1 shipped them (never edit: old stores were made from this)."""
    md = MetaData()
    Table("schema_migrations", md,
          Column("version", Integer, primary_key=True),
          Column("applied_at", String(40), nullable=False))
    Table("runs", md,
          Column("id", String(32), primary_key=True),
          Column("kind", String(32), nullable=False),
          Column("name", String(128), nullable=False),
          Column("status", String(16), nullable=False),
          Column("config", Text, nullable=False),
          Column("parent_run_id", String(32), ForeignKey("runs.id"), nullable=True),
          Column("host", Text, nullable=False),
          Column("packages", Text, nullable=False),
          Column("git_sha", String(64), nullable=True),
          Column("error", Text, nullable=True),
          Column("summary", Text, nullable=True),
          Column("started_at", String(40), nullable=False),
          Column("ended_at", String(40), nullable=True),
          Index("ix_runs_started", "started_at"))
    Table("params", md,
          Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
          Column("key", String(256), primary_key=True),
          Column("value", Text, nullable=False))
    Table("metrics", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
          Column("key", String(256), nullable=False),
          Column("step", Integer, nullable=False),
          Column("value", Float, nullable=True),
          Column("time", Float, nullable=False),
          Index("ix_metrics_run_key", "run_id", "key", "step"))
    Table("artifacts", md,
          Column("id", String(64), primary_key=True),
          Column("kind", String(32), nullable=False),
          Column("size", Integer, nullable=False),
          Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
          Column("meta", Text, nullable=False),
          Column("created_at", String(40), nullable=False))
    Table("run_artifacts", md,
          Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
          Column("artifact_id", String(64), ForeignKey("artifacts.id"), primary_key=True),
          Column("role", String(16), primary_key=True))
    Table("lineage", md,
          Column("parent_id", String(64), primary_key=True),
          Column("child_id", String(64), primary_key=True),
          Column("relation", String(32), nullable=False))
    Table("models", md,
          Column("name", String(128), primary_key=True),
          Column("description", Text, nullable=False, default=""),
          Column("created_at", String(40), nullable=False))
    Table("model_versions", md,
          Column("name", String(128), ForeignKey("models.name"), primary_key=True),
          Column("version", Integer, primary_key=True),
          Column("artifact_id", String(64), ForeignKey("artifacts.id"), nullable=False),
          Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
          Column("description", Text, nullable=False, default=""),
          Column("metrics", Text, nullable=False, default="{}"),
          Column("created_at", String(40), nullable=False))
    Table("aliases", md,
          Column("name", String(128), ForeignKey("models.name"), primary_key=True),
          Column("alias", String(128), primary_key=True),
          Column("version", Integer, nullable=False),
          Column("updated_at", String(40), nullable=False))
    return md


def _v1_initial(conn: Connection) -> None:
    _schema1().create_all(conn, checkfirst=True)


def _v2_registry_security(conn: Connection) -> None:
    # Soft deletes (versions) and garbage collection (artifact files); ADD COLUMN of a nullable
    # column is the same statement on SQLite and PostgreSQL and keeps every row.
    for name in ("model_versions", "artifacts"):
        columns = {c["name"] for c in inspect(conn).get_columns(name)}
        if "deleted_at" not in columns:
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN deleted_at VARCHAR(40)")
    _schema2_new_tables().create_all(conn, checkfirst=True)


def _schema2_new_tables() -> MetaData:
    """The tables schema 2 added, frozen as shipped (a later migration changes them, not this)."""
    md = MetaData()
    Table("model_tags", md,
          Column("name", String(128), primary_key=True),
          Column("version", Integer, primary_key=True),
          Column("key", String(128), primary_key=True),
          Column("value", Text, nullable=False),
          Column("updated_at", String(40), nullable=False))
    Table("model_notes", md,
          Column("name", String(128), primary_key=True),
          Column("version", Integer, primary_key=True),
          Column("notes", Text, nullable=False),
          Column("updated_at", String(40), nullable=False),
          Column("updated_by", String(128), nullable=False))
    Table("alias_history", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("name", String(128), nullable=False),
          Column("alias", String(128), nullable=False),
          Column("from_version", Integer, nullable=True),
          Column("to_version", Integer, nullable=True),
          Column("kind", String(16), nullable=False),
          Column("actor", String(128), nullable=False),
          Column("at", String(40), nullable=False),
          Index("ix_alias_history_name", "name", "alias", "id"))
    Table("api_keys", md,
          Column("id", String(16), primary_key=True),
          Column("name", String(128), nullable=False),
          Column("secret_hash", Text, nullable=False),
          Column("scopes", String(128), nullable=False),
          Column("created_at", String(40), nullable=False),
          Column("created_by", String(128), nullable=False),
          Column("expires_at", String(40), nullable=True),
          Column("revoked_at", String(40), nullable=True),
          Column("last_used_at", String(40), nullable=True))
    Table("audit_log", md,
          Column("seq", Integer, primary_key=True, autoincrement=False),
          Column("at", String(40), nullable=False),
          Column("actor", String(128), nullable=False),
          Column("action", String(64), nullable=False),
          Column("target", String(256), nullable=False),
          Column("outcome", String(16), nullable=False),
          Column("details", Text, nullable=False),
          Column("prev_hash", String(64), nullable=False),
          Column("hash", String(64), nullable=False, unique=True),
          Column("signature", Text, nullable=True),
          Column("signer", String(32), nullable=True))
    return md


_APPEND_ONLY = "audit_log is append-only"


def _v3_audit_append_only(conn: Connection) -> None:
    # The database refuses UPDATE and DELETE on the audit log. Someone with the database file
    # (or DDL rights) can drop the triggers; the hash chain, head anchor and signatures are
    # what make that detectable. This stops tools and accidents, not a determined attacker.
    if conn.dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION yard_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        conn.exec_driver_sql("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                             "ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION yard_audit_append_only()")


def drop_audit_guard(conn: Connection) -> None:
    """Remove the append-only triggers, as someone with the database file could (tests of the chain use it)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")


MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial, _v2_registry_security, _v3_audit_append_only]
LATEST = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """The highest applied migration number (0 for an empty database)."""
    if not inspect(conn).has_table("schema_migrations"):
        return 0
    versions = conn.execute(select(tables.schema_migrations.c.version)).scalars().all()
    return max(versions, default=0)


def upgrade(conn: Connection) -> int:
    """Apply every pending migration; returns the resulting version.

    Raises:
        StoreError: the store was written by a newer modelyard.
    """
    if conn.dialect.name == "postgresql":
        # Many processes may open a fresh PostgreSQL store at once; one migrates, the others wait
        # (SQLite gets the same from BEGIN IMMEDIATE). The lock ends with the transaction.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7326151)")
    version = current_version(conn)
    if version > LATEST:
        raise StoreError(f"store schema version {version} is newer than this modelyard ({LATEST})",
                         hint="upgrade modelyard")
    for number in range(version + 1, LATEST + 1):
        if number == 1:
            tables.schema_migrations.create(conn, checkfirst=True)
        MIGRATIONS[number - 1](conn)
        conn.execute(insert(tables.schema_migrations).values(
            version=number, applied_at=datetime.now(UTC).isoformat()))
    return LATEST
