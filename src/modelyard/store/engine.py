"""Database engines (SQLite in WAL mode by default, PostgreSQL by URL) and retried writes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from modelyard.core.errors import StoreError

T = TypeVar("T")
_BUSY_TIMEOUT_MS = 30_000
_RETRIES = 8
_WRITE_OPTION = "yard_write"


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    Raises:
        StoreError: the URL's scheme is not sqlite or postgresql.
    """
    if url.startswith("sqlite"):
        # NullPool: one connection per transaction, so forked workers never share one.
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writes take the write lock at BEGIN, not at the first write: a deferred transaction
            # that read first and then writes can fail with SQLITE_BUSY without waiting. Reads
            # (plain `engine.connect()`) stay deferred, so in WAL mode they never wait for a writer.
            write = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        # Let SQLAlchemy's pysqlite driver leave BEGIN to us (the documented recipe).
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    if url.startswith(("postgresql", "postgres")):
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgres://")
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return create_engine(url, pool_pre_ping=True)
    raise StoreError(f"unsupported store URL scheme in {url.split(':', 1)[0]!r}",
                     hint="use sqlite:///path or postgresql://user@host/db")


def _is_transient(exc: OperationalError) -> bool:
    text = str(exc.orig).lower() if exc.orig else str(exc).lower()
    return "locked" in text or "busy" in text or "could not serialize" in text or "deadlock" in text


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction (no retry: use :func:`with_retry` around the whole unit of work).

    On SQLite it starts with ``BEGIN IMMEDIATE``; ``engine.begin()`` used directly gets a
    deferred ``BEGIN`` (fine for one-statement writes, weaker under contention).
    """
    with engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def with_retry(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work(conn)`` in a transaction, retrying on lock contention with jittered backoff.

    Raises:
        StoreError: the store stayed locked through every retry.
    """
    for attempt in range(_RETRIES):
        try:
            with transaction(engine) as conn:
                return work(conn)
        except OperationalError as exc:
            if not _is_transient(exc) or attempt == _RETRIES - 1:
                raise StoreError(f"store write failed: {exc.orig or exc}") from exc
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
