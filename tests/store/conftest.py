"""Back ends for the shared store test class: SQLite always, PostgreSQL when a server is there.

PostgreSQL comes from ``$YARD_TEST_POSTGRES_URL`` (a server you run; the tests create
and drop their own databases in it), or else from a throwaway server this session
starts on 127.0.0.1 when Debian's ``postgresql`` binaries are installed
(``make system-deps``). Without either, the PostgreSQL cases skip and say why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.store.pg_server import PgServer, create_database, drop_database, find_bin

_NO_PG = "PostgreSQL not available: set $YARD_TEST_POSTGRES_URL or `apt-get install postgresql`"


@dataclass
class Backend:
    """Where one test's store lives."""

    name: str
    root: Path
    url: str


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str | None]:
    """An admin URL of a PostgreSQL server, or None."""
    url = os.environ.get("YARD_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    bindir = find_bin()
    if bindir is None:
        yield None
        return
    server = PgServer(bindir)
    try:
        started = server.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        server.stop()
        pytest.skip(f"could not start PostgreSQL from {bindir}: {exc}")
    try:
        yield started
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty store location on each back end."""
    root = tmp_path / "store"
    root.mkdir()
    if request.param == "sqlite":
        yield Backend("sqlite", root, f"sqlite:///{root / 'store.db'}")
        return
    admin = request.getfixturevalue("postgres_admin_url")
    if admin is None:
        pytest.skip(_NO_PG)
    url = create_database(admin)
    try:
        yield Backend("postgres", root, url)
    finally:
        drop_database(admin, url)
