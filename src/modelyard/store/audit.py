"""The audit log: append-only, hash-chained, optionally signed (Ed25519).

Each entry records who (an API key id or ``local:<user>``), what (``action`` on
``target``), when, the outcome and JSON details, plus the hash of the entry before it:

    hash = sha256(canonical JSON of seq, at, actor, action, target, outcome, details, prev_hash)

so editing an entry breaks its own hash, deleting one leaves a gap in ``seq`` and a
``prev_hash`` that points nowhere, and reordering breaks both. Deleting the newest
entries leaves a shorter, still valid chain, so every append also moves a head anchor
(``<store>/audit-head.json``: the highest seq and its hash) kept outside the database;
``verify`` compares the two. Someone able to rewrite both the database and that file can
forge history; signing entries with a key kept elsewhere (``$YARD_AUDIT_SIGNING_KEY_FILE``)
and verifying with the public key closes that for the signed entries.

Appends serialise on the primary key: two writers that both read seq N and insert N+1
collide, and the loser retries with N+2 (SQLite's BEGIN IMMEDIATE makes that rare).

    store.audit.append(actor="key:ab12…", action="model.promote", target="digits@v3",
                       outcome="forced", details={"gate": {...}})
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from modelyard.core.atomic import atomic_write_text
from modelyard.core.errors import ConfigError, StoreError
from modelyard.store import tables
from modelyard.store.engine import with_retry

T = TypeVar("T")
Record = Callable[..., "AuditEntry"]
GENESIS = "0" * 64
HEAD_FILE = "audit-head.json"
SIGNING_KEY_ENV = "YARD_AUDIT_SIGNING_KEY_FILE"
OUTCOMES = ("ok", "refused", "forced", "failed")
_HASHED = ("seq", "at", "actor", "action", "target", "outcome", "details", "prev_hash")


def default_actor() -> str:
    """``$YARD_ACTOR``, else ``local:<login name>``: who is acting when no API key is involved."""
    if os.environ.get("YARD_ACTOR"):
        return os.environ["YARD_ACTOR"][:128]
    try:
        return f"local:{getpass.getuser()}"[:128]
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"local:uid{os.getuid() if hasattr(os, 'getuid') else '?'}"


@dataclass(frozen=True)
class AuditEntry:
    """One link of the chain."""

    seq: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    signature: str | None = None
    signer: str | None = None


@dataclass
class AuditReport:
    """What ``verify`` found."""

    entries: int = 0
    signed: int = 0
    problems: list[str] = field(default_factory=list)
    head_seq: int | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def entry_hash(values: Mapping[str, Any]) -> str:
    """The sha256 of an entry's hashed fields, as canonical JSON."""
    body = {key: values[key] for key in _HASHED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class AuditSigner:
    """Signs entry hashes with an Ed25519 private key (PEM, or 32 raw bytes as base64)."""

    def __init__(self, private_key: Any) -> None:
        self._key = private_key
        self.fingerprint = public_fingerprint(private_key.public_key())

    @classmethod
    def from_file(cls, path: Path) -> AuditSigner:
        """Load a private key file that only its owner can read.

        Raises:
            ConfigError: missing, readable by others, or not an Ed25519 key.
        """
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError as exc:
            raise ConfigError(f"cannot read audit signing key: {exc.strerror}", where=str(path)) from None
        if mode & 0o077:
            raise ConfigError(f"audit signing key has permissions {mode:04o}; others must not read it",
                              where=str(path), hint=f"chmod 600 {path}")
        return cls(_load_private(path.read_bytes(), where=str(path)))

    def sign(self, digest: str) -> str:
        """Base64 signature of a hex entry hash."""
        return base64.b64encode(self._key.sign(digest.encode())).decode()


def _load_private(data: bytes, *, where: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data, password=None)
    except ValueError:
        try:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(data.strip(), validate=True))
        except ValueError:
            raise ConfigError("not an Ed25519 private key (PEM or base64 of 32 bytes)", where=where) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("not an Ed25519 private key", where=where)
    return key


def load_public_key(path: Path) -> Any:
    """An Ed25519 public key from a PEM file.

    Raises:
        ConfigError: unreadable or not an Ed25519 public key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read Ed25519 public key: {exc}", where=str(path)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("not an Ed25519 public key", where=str(path))
    return key


def public_fingerprint(public_key: Any) -> str:
    """A short id of a public key (sha256 of its raw bytes)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_signing_key(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (private file 0600, must not exist); returns the fingerprint.

    Raises:
        ConfigError: the private key file exists already.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError("key file exists already; refusing to overwrite", where=str(private_path)) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return public_fingerprint(key.public_key())


class AuditLog:
    """Append to and read the hash chain.

    Args:
        engine: the store's database.
        head_path: the head anchor file (None: no anchor, e.g. a read-only copy).
        signer: signs each new entry (default: from ``$YARD_AUDIT_SIGNING_KEY_FILE`` when set).
    """

    def __init__(self, engine: Engine, *, head_path: Path | None = None, signer: AuditSigner | None = None) -> None:
        self.engine = engine
        self.head_path = head_path
        if signer is None and os.environ.get(SIGNING_KEY_ENV):
            signer = AuditSigner.from_file(Path(os.environ[SIGNING_KEY_ENV]))
        self.signer = signer

    def append(self, actor: str | None = None, action: str = "", target: str = "", outcome: str = "ok",
               details: Mapping[str, Any] | None = None, *, detail: Mapping[str, Any] | None = None) -> AuditEntry:
        """Append one entry in its own transaction (``detail`` is accepted as a synonym of ``details``).

        Raises:
            StoreError: the store could not be written.
        """
        return self.transact(lambda _conn, record: record(
            actor=actor, action=action, target=target, outcome=outcome,
            details=details if details is not None else detail))

    def transact(self, work: Callable[[Connection, Record], T]) -> T:
        """Run ``work(conn, record)`` in one write transaction; ``record(actor=…, action=…, …)``
        appends audit entries that commit with the change (or not at all).

        The whole unit is retried when a concurrent writer took the same audit seq (or the
        same model version number); the head anchor moves after the commit.

        Raises:
            StoreError: still colliding after many tries.
        """
        last_error: IntegrityError | None = None
        for _attempt in range(25):
            entries: list[AuditEntry] = []
            try:
                result = with_retry(self.engine, partial(self._body, work, entries))
            except IntegrityError as exc:
                if not _is_collision(exc):
                    # A foreign key or NOT NULL failure is the caller's bug or bad input: retrying cannot help.
                    raise StoreError(f"store write refused by the database: {exc.orig or exc}") from exc
                last_error = exc  # another writer took this seq / version: read the new tail, try again
                continue
            if entries:
                self.note_head(max(entries, key=lambda e: e.seq))
            return result
        raise StoreError(f"store write kept colliding with concurrent writers: {last_error}")

    def _body(self, work: Callable[[Connection, Record], T], entries: list[AuditEntry], conn: Connection) -> T:
        def record(**fields: Any) -> AuditEntry:
            entry = self.append_in(conn, **fields)
            entries.append(entry)
            return entry

        entries.clear()  # a retried transaction starts over
        return work(conn, record)

    def append_in(self, conn: Connection, *, actor: str | None = None, action: str, target: str, outcome: str = "ok",
                  details: Mapping[str, Any] | None = None) -> AuditEntry:
        """Append inside the caller's transaction (prefer :meth:`transact`, which also retries and moves the head)."""
        if not action:
            raise ValueError("an audit entry needs an action")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        log = tables.audit_log
        last = conn.execute(select(log.c.seq, log.c.hash).order_by(log.c.seq.desc()).limit(1)).first()
        values: dict[str, Any] = {
            "seq": (last.seq if last else 0) + 1,
            "at": datetime.now(UTC).isoformat(),
            "actor": (actor or default_actor())[:128],
            "action": action[:64],
            "target": str(target)[:256],
            "outcome": outcome,
            "details": json.loads(json.dumps(dict(details or {}), sort_keys=True, default=str)),
            "prev_hash": last.hash if last else GENESIS,
        }
        values["hash"] = entry_hash(values)
        if self.signer is not None:
            values["signature"] = self.signer.sign(values["hash"])
            values["signer"] = self.signer.fingerprint
        conn.execute(insert(log).values(**{**values, "details": json.dumps(values["details"], sort_keys=True)}))
        return AuditEntry(**values)

    def note_head(self, entry: AuditEntry) -> None:
        """Move the head anchor forward to ``entry`` (never backward: a slower writer may finish last)."""
        if self.head_path is None:
            return
        head = read_head(self.head_path)
        if head is not None and head["seq"] >= entry.seq:
            return
        atomic_write_text(self.head_path, json.dumps({"seq": entry.seq, "hash": entry.hash}) + "\n")

    def entries(self, *, limit: int | None = None, action: str | None = None, target: str | None = None,
                newest_first: bool = False) -> list[AuditEntry]:
        """Entries in chain order (or newest first), optionally filtered by action prefix or target."""
        log = tables.audit_log
        query = select(log).order_by(log.c.seq.desc() if newest_first else log.c.seq)
        if action:
            query = query.where(log.c.action.like(action.replace("%", "") + "%"))
        if target:
            query = query.where(log.c.target == target)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query).all()]

    def count(self) -> int:
        """How many entries the chain holds."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(tables.audit_log)).scalar() or 0)

    def verify(self, *, public_key: Any = None, require_signatures: bool = False) -> AuditReport:
        """Walk the chain and report every edit, gap, reordering, truncation or bad signature.

        Args:
            public_key: an Ed25519 public key to check signatures with (default: the
                signer's own, when a signing key is configured).
            require_signatures: count unsigned entries as problems.
        """
        from cryptography.exceptions import InvalidSignature

        if public_key is None and self.signer is not None:
            public_key = self.signer._key.public_key()
        fingerprint = public_fingerprint(public_key) if public_key is not None else None
        report = AuditReport()
        expected_seq, prev = 1, GENESIS
        log = tables.audit_log
        with self.engine.connect() as conn:
            rows = conn.execute(select(log).order_by(log.c.seq)).all()
        for row in rows:
            report.entries += 1
            values = row._asdict()
            try:
                values["details"] = json.loads(values["details"])
            except json.JSONDecodeError:
                report.problems.append(f"entry {row.seq}: details are not valid JSON (edited)")
                values["details"] = values["details"]
            if row.seq != expected_seq:
                report.problems.append(f"entries {expected_seq}..{row.seq - 1} are missing (deleted)"
                                       if row.seq > expected_seq else f"entry {row.seq} is out of order")
            if row.prev_hash != prev:
                report.problems.append(f"entry {row.seq}: does not follow the entry before it "
                                       "(an entry was deleted, inserted or reordered)")
            actual = entry_hash(values)
            if actual != row.hash:
                report.problems.append(f"entry {row.seq}: content does not match its hash (edited)")
            if row.signature:
                report.signed += 1
                if public_key is not None and row.signer == fingerprint:
                    try:
                        public_key.verify(base64.b64decode(row.signature), row.hash.encode())
                    except (InvalidSignature, ValueError):
                        report.problems.append(f"entry {row.seq}: bad signature")
                elif public_key is not None:
                    report.problems.append(f"entry {row.seq}: signed by another key ({row.signer})")
            elif require_signatures:
                report.problems.append(f"entry {row.seq}: not signed")
            expected_seq, prev = row.seq + 1, actual
        if self.head_path is not None:
            head = read_head(self.head_path)
            if head is not None:
                report.head_seq = head["seq"]
                by_seq = {row.seq: row.hash for row in rows}
                if head["seq"] > (rows[-1].seq if rows else 0):
                    report.problems.append(f"the log ends at entry {rows[-1].seq if rows else 0} but the head "
                                           f"anchor names entry {head['seq']} (newest entries deleted)")
                elif by_seq.get(head["seq"]) != head["hash"]:
                    report.problems.append(f"entry {head['seq']} differs from the head anchor (rewritten)")
        return report


def _is_collision(exc: IntegrityError) -> bool:
    """True for a unique / primary-key clash (a concurrent writer took the same seq or version)."""
    text = str(exc.orig or exc).lower()
    return "unique" in text or "duplicate key" in text


def read_head(path: Path) -> dict[str, Any] | None:
    """The head anchor, or None when there is none yet.

    Raises:
        StoreError: the anchor exists but is unreadable.
    """
    try:
        raw = json.loads(path.read_text("utf-8"))
        return {"seq": int(raw["seq"]), "hash": str(raw["hash"])}
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"unreadable audit head anchor: {exc}", where=str(path)) from None


def _entry(row: Any) -> AuditEntry:
    values = row._asdict()
    try:
        values["details"] = json.loads(values["details"])
    except json.JSONDecodeError:
        values["details"] = {"unreadable": values["details"]}
    return AuditEntry(**values)


__all__ = ["GENESIS", "OUTCOMES", "SIGNING_KEY_ENV", "AuditEntry", "AuditLog", "AuditReport", "AuditSigner",
           "default_actor", "entry_hash", "generate_signing_key", "load_public_key", "public_fingerprint"]
