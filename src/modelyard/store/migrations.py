"""Numbered schema migrations. Each entry takes a connection inside a transaction.

Migration 1 creates the first schema from a frozen copy of the tables, so a new store
and an old one migrated forward end in the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, inspect, select

from modelyard.core.errors import StoreError
from modelyard.store import tables


def _v1_initial(conn: Connection) -> None:
    # The current tables equal schema 1; when a table changes, freeze a copy of the
    # schema-1 definitions here and add migration 2 with the ALTERs.
    tables.metadata.create_all(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial]
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
