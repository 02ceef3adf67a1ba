"""Open the project store: ``.yard/`` in the working directory, ``$YARD_HOME``, or a URL."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from modelyard.core.errors import StoreError
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.engine import make_engine, with_retry
from modelyard.store.migrations import upgrade
from modelyard.store.registry import ModelRegistry
from modelyard.store.runs import RunStore


class Store:
    """The project store: a database (runs, metrics, registry) plus an artifact folder.

    Attributes:
        root: the store folder (artifacts, temp files, the SQLite file by default).
        url: the database URL.
        runs: runs, params and metric series.
        artifacts: content-addressed artifact directories.
        models: the model registry.
    """

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.engine = make_engine(url)
        try:
            with_retry(self.engine, upgrade)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store database: {exc}", where=_redact(url)) from exc
        self.runs = RunStore(self.engine)
        self.artifacts = ArtifactStore(root, self.engine)
        self.models = ModelRegistry(self.engine)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def default_root() -> Path:
    """``$YARD_HOME`` or ``./.yard``."""
    return Path(os.environ.get("YARD_HOME") or Path.cwd() / ".yard")


def open_store(root: str | Path | None = None, url: str | None = None) -> Store:
    """Open (creating and migrating as needed) the project store.

    Args:
        root: store folder; default ``$YARD_HOME`` or ``./.yard``.
        url: database URL; default ``$YARD_STORE_URL`` or ``sqlite:///<root>/store.db``.
    """
    folder = Path(root) if root is not None else default_root()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create store folder: {exc.strerror}", where=str(folder)) from exc
    database = url or os.environ.get("YARD_STORE_URL") or f"sqlite:///{folder / 'store.db'}"
    return Store(folder, database)


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
