"""Where an encrypted store keeps plaintext while a process works: memory-backed, private, temporary.

Stages read and write ordinary files (Parquet, safetensors), so an encrypted store hands
them plaintext folders. Those folders live under ``/dev/shm`` (tmpfs: RAM, not disk) in
``yard-<uid>/<key id>/``, mode 0700:

- ``proc-<pid>-…/`` per process: staging folders and decrypted artifacts, removed when
  the store is closed or the process exits;
- ``runs/<run id>/`` run scratch (checkpoints), kept until reboot so a killed run resumes.

``$YARD_PLAINTEXT_DIR`` overrides the base (a platform without ``/dev/shm`` falls back to
the system temp folder, with a warning: there, plaintext may reach disk).
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
from pathlib import Path

from modelyard.core.errors import StoreError
from modelyard.core.logging import get_logger

log = get_logger("store.plaintext")
PLAINTEXT_ENV = "YARD_PLAINTEXT_DIR"


def plaintext_base() -> Path:
    """The memory-backed folder plaintext goes to."""
    override = os.environ.get(PLAINTEXT_ENV)
    if override:
        return Path(override)
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs on purpose: plaintext must stay in memory
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    log.warning("no /dev/shm: decrypted artifacts go to %s, which may be on disk", tempfile.gettempdir())
    return Path(tempfile.gettempdir())


def _private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check an existing one is ours, private and not a symlink.

    Raises:
        StoreError: someone else owns it, it is a symlink, or others can read it.
    """
    try:
        path.mkdir(mode=0o700, parents=False, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create private plaintext folder: {exc.strerror}", where=str(path)) from None
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StoreError("plaintext folder is not a real folder (symlink?)", where=str(path))
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise StoreError("plaintext folder belongs to another user", where=str(path))
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise StoreError(f"plaintext folder has permissions {stat.S_IMODE(info.st_mode):04o}; expected 0700",
                         where=str(path))
    return path


class PlaintextArea:
    """The private plaintext folders of one encrypted store in one process."""

    def __init__(self, key_id: str) -> None:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        self.store_dir = _private_dir(_private_dir(plaintext_base() / f"yard-{uid}") / key_id)
        self.process_dir = Path(tempfile.mkdtemp(prefix=f"proc-{os.getpid()}-", dir=self.store_dir))
        self._owner = os.getpid()
        atexit.register(self.close)

    @property
    def staging_dir(self) -> Path:
        """Where stages write new artifacts before they are sealed."""
        path = self.process_dir / "staging"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    @property
    def decrypted_dir(self) -> Path:
        """Where artifacts are opened for reading."""
        path = self.process_dir / "open"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    @property
    def runs_dir(self) -> Path:
        """Run scratch (checkpoints), shared by the processes of this store until reboot."""
        path = self.store_dir / "runs"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def close(self) -> None:
        """Remove this process's plaintext (a forked child leaves its parent's alone)."""
        if os.getpid() == self._owner:
            shutil.rmtree(self.process_dir, ignore_errors=True)
            atexit.unregister(self.close)


__all__ = ["PLAINTEXT_ENV", "PlaintextArea", "plaintext_base"]
