"""API keys: created once, shown once, stored as argon2id hashes, scoped, expiring, revocable.

A token reads ``yard_<id>_<secret>``: the 12-hex-digit id is public (it names the key in
``yard keys list`` and in the audit log), the secret is 32 random bytes that only the
holder has; the store keeps ``argon2id(secret)``. Verifying an unknown id still runs
one argon2 verification against a dummy hash, so a caller cannot tell an unknown id
from a wrong secret by timing; argon2's own comparison is constant time.

    token, info = store.keys.create(["predict"], expires="30d", name="web-frontend")
    info = store.keys.verify(token)      # KeyInfo, or AuthError
    store.keys.revoke(info.id)
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from modelyard.core.errors import AuthError, ConfigError, NotFoundError
from modelyard.store import tables
from modelyard.store.audit import AuditLog
from modelyard.store.engine import with_retry

SCOPES = ("predict", "read", "admin")
_TOKEN = re.compile(r"^yard_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Record a key's use at most this often: a busy key must not turn every request into a write.
_LAST_USED_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class KeyInfo:
    """What the store knows about a key (never the secret)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None

    def allows(self, scope: str) -> bool:
        """True for ``admin`` keys or keys holding ``scope``."""
        return "admin" in self.scopes or scope in self.scopes

    @property
    def status(self) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at:
            return "revoked"
        if self.expires_at and datetime.fromisoformat(self.expires_at) <= datetime.now(UTC):
            return "expired"
        return "active"


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` → a timedelta.

    Raises:
        ConfigError: another form, or zero.
    """
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"invalid duration {text!r}", where="--expires", hint="e.g. 90m, 12h, 30d, 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    """Validate scope names (a comma-separated string or a list).

    Raises:
        ConfigError: empty, or an unknown scope.
    """
    items = [s.strip() for s in (scopes.split(",") if isinstance(scopes, str) else scopes) if s.strip()]
    unknown = [s for s in items if s not in SCOPES]
    if not items or unknown:
        raise ConfigError(f"unknown scopes {unknown}" if unknown else "a key needs at least one scope",
                          where="--scopes", hint=f"choose from {', '.join(SCOPES)}")
    return tuple(sorted(set(items), key=SCOPES.index))


def _hasher() -> Any:
    from argon2 import PasswordHasher, Type

    # OWASP's argon2id minimum (19 MiB, 2 passes): the secret has 256 bits, so the hash guards
    # against a leaked database, not against guessing; this keeps a verification near 20 ms.
    return PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, type=Type.ID)


class KeyStore:
    """Create, verify, list and revoke API keys; every change is audited."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit
        self._ph = _hasher()
        self._dummy: str | None = None  # made on first use: opening a store must not pay for argon2

    @property
    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._ph.hash(secrets.token_urlsafe(32))
        return self._dummy

    def create(self, scopes: Iterable[str] | str, expires: str | timedelta | None = None, *, name: str = "",
               actor: str | None = None) -> tuple[str, KeyInfo]:
        """Make a key; returns ``(token, info)``. The token is shown once and never stored.

        Raises:
            ConfigError: bad scopes or expiry.
        """
        scope_list = parse_scopes(scopes)
        if len(name) > 128 or not name.isprintable():
            raise ConfigError("a key name is at most 128 printable characters", where="--name",
                              hint="e.g. web-frontend")
        now = datetime.now(UTC)
        lifetime = parse_duration(expires) if isinstance(expires, str) else expires
        expires_at = (now + lifetime).isoformat() if lifetime is not None else None
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        name = name or f"key-{key_id}"
        row = {"id": key_id, "name": name, "secret_hash": self._ph.hash(secret), "scopes": ",".join(scope_list),
               "created_at": now.isoformat(), "created_by": "", "expires_at": expires_at}

        def work(conn: Any, record: Any) -> None:
            entry = record(actor=actor, action="key.create", target=f"key:{key_id}",
                           details={"name": name, "scopes": list(scope_list), "expires_at": expires_at})
            conn.execute(insert(tables.api_keys).values(**{**row, "created_by": entry.actor}))

        self.audit.transact(work)
        return f"yard_{key_id}_{secret}", self.get(key_id)

    def verify(self, token: str) -> KeyInfo:
        """The key behind ``token`` if it is valid, unrevoked and unexpired.

        Raises:
            AuthError: anything else (the message does not say which, to give callers nothing to probe).
        """
        from argon2.exceptions import InvalidHashError, VerificationError

        match = _TOKEN.match(token or "")
        row = None
        if match:
            with self.engine.connect() as conn:
                row = conn.execute(select(tables.api_keys).where(tables.api_keys.c.id == match.group(1))).first()
        secret = match.group(2) if match else "x" * 43
        try:
            self._ph.verify(row.secret_hash if row is not None else self._dummy_hash, secret)
            valid = row is not None
        except (VerificationError, InvalidHashError):
            valid = False
        if not valid or row is None:
            raise AuthError("invalid API key")
        info = _info(row)
        if info.status != "active":
            raise AuthError("invalid API key")
        self._touch(info)
        return info

    def _touch(self, info: KeyInfo) -> None:
        now = datetime.now(UTC)
        if info.last_used_at and now - datetime.fromisoformat(info.last_used_at) < _LAST_USED_EVERY:
            return
        with_retry(self.engine, lambda conn: conn.execute(
            update(tables.api_keys).where(tables.api_keys.c.id == info.id).values(last_used_at=now.isoformat())))

    def get(self, key_id: str) -> KeyInfo:
        """One key by id.

        Raises:
            NotFoundError: no such key.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.api_keys).where(tables.api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFoundError(f"API key {key_id!r} not found", hint="see `yard keys list`")
        return _info(row)

    def list(self) -> list[KeyInfo]:
        """Every key, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.api_keys).order_by(tables.api_keys.c.created_at.desc())).all()
        return [_info(r) for r in rows]

    def revoke(self, key_id: str, *, actor: str | None = None) -> KeyInfo:
        """Revoke a key (idempotent); it fails verification from now on.

        Raises:
            NotFoundError: no such key.
        """
        self.get(key_id)
        now = datetime.now(UTC).isoformat()

        def work(conn: Any, record: Any) -> None:
            conn.execute(update(tables.api_keys).where(tables.api_keys.c.id == key_id,
                                                       tables.api_keys.c.revoked_at.is_(None)).values(revoked_at=now))
            record(actor=actor, action="key.revoke", target=f"key:{key_id}")

        self.audit.transact(work)
        return self.get(key_id)


def _info(row: Any) -> KeyInfo:
    return KeyInfo(id=row.id, name=row.name, scopes=tuple(s for s in row.scopes.split(",") if s),
                   created_at=row.created_at, created_by=row.created_by, expires_at=row.expires_at,
                   revoked_at=row.revoked_at, last_used_at=row.last_used_at)


__all__ = ["SCOPES", "KeyInfo", "KeyStore", "parse_duration", "parse_scopes"]
