"""Open the project store: ``.yard/`` in the working directory, ``$YARD_HOME``, or a URL."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from modelyard.core.errors import StoreError
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.audit import HEAD_FILE, AuditLog
from modelyard.store.crypto import open_cipher
from modelyard.store.engine import make_engine, with_retry
from modelyard.store.keys import KeyStore
from modelyard.store.migrations import upgrade
from modelyard.store.plaintext import PlaintextArea
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
        audit: the hash-chained audit log.
        keys: API keys.
        encrypted: True when artifacts are sealed with AES-256-GCM on disk.
    """

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        cipher = open_cipher(root)  # before the database: a missing or wrong key fails fast
        self.engine = make_engine(url)
        try:
            with_retry(self.engine, upgrade)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store database: {exc}", where=_redact(url)) from exc
        self.plaintext = PlaintextArea(cipher.key_id) if cipher is not None else None
        self.runs = RunStore(self.engine)
        self.artifacts = ArtifactStore(root, self.engine, cipher=cipher, plaintext=self.plaintext)
        self.audit = AuditLog(self.engine, head_path=root / HEAD_FILE)
        self.models = ModelRegistry(self.engine, self.audit)
        self.keys = KeyStore(self.engine, self.audit)

    @property
    def encrypted(self) -> bool:
        """True when artifacts are encrypted at rest."""
        return self.artifacts.encrypted

    @property
    def scratch_root(self) -> Path:
        """Where run scratch (checkpoints) goes: the store folder, or private memory for an encrypted store."""
        return self.plaintext.store_dir if self.plaintext is not None else self.root

    @property
    def redacted_url(self) -> str:
        """The database URL without its password."""
        return _redact(self.url)

    def close(self) -> None:
        """Release database connections and remove this process's decrypted plaintext."""
        self.engine.dispose()
        if self.plaintext is not None:
            self.plaintext.close()

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
