"""Who may call what: bearer keys with scopes, an explicit decision on every route, audit.

Every route declares its decision with one dependency, so a test can walk the route
table and fail on a route without one:

    @router.get("/v2/health/live", dependencies=[public("load balancers probe it")])
    @router.post("/v2/models/{name}/infer", dependencies=[requires("predict")])

Scopes are ``predict``, ``read`` and ``admin``; ``admin`` includes the other two.
``requires("read", "predict")`` accepts either. A request without a valid key gets 401,
one whose key lacks the scope 403, one over its key's rate 429; auth failures and
403s are appended to the store's audit chain.

This module is the only one in ``serve`` that knows the store's key and audit APIs:
``store.keys.verify(token) -> KeyInfo`` (``id``, ``name``, ``scopes``, ``expires_at``;
:class:`~modelyard.core.errors.AuthError` for unknown, revoked or expired keys, argon2id
hashes compared in constant time) and ``store.audit.append(actor=…, action=…, target=…,
outcome=…, details=…)``. Actors are written ``key:<id>`` as the audit log's other
writers do.

Verifying an argon2 hash costs tens of milliseconds by design, so a verified key is
trusted for ``auth_cache_s`` seconds (keyed by the token's sha256; the token itself is
never kept): a revocation takes effect within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelyard.core.errors import AuthError, StoreError
from modelyard.core.logging import get_logger
from modelyard.serve.deps import get_authenticator, get_rate_limiter
from modelyard.serve.errors import ServeError
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.ratelimit import RateLimiter

log = get_logger("serve.auth")

SCOPES = ("predict", "read", "admin")
# Most cached verifications kept; the oldest go first.
_MAX_CACHED_KEYS = 4096
# Failed verifications one client address may cause: a burst of 20, then one per second. Beyond it the
# client gets 429 before any argon2 work or audit write, so guessing keys cannot load the server or the log.
_FAILURES_PER_S = 1.0
_FAILURE_BURST = 20

bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `yard keys create`.")


@dataclass(frozen=True)
class Principal:
    """The caller of a request."""

    key_id: str
    name: str
    scopes: frozenset[str]
    anonymous: bool = False
    expires_at: float | None = None  # epoch seconds; a cached verification never outlives the key

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return self.key_id if self.anonymous else f"key:{self.key_id}"

    def allows(self, any_of: Iterable[str]) -> bool:
        """True when the principal holds ``admin`` or one of ``any_of``."""
        return "admin" in self.scopes or any(scope in self.scopes for scope in any_of)


class KeyVerifier(Protocol):
    """Checks a bearer token; raises :class:`AuthError` for a bad one."""

    def verify(self, token: str) -> Principal: ...


class StoreKeyVerifier:
    """Verifies tokens against the store's hashed API keys (``store.keys``)."""

    def __init__(self, store: Any) -> None:
        keys = getattr(store, "keys", None)
        if keys is None or not hasattr(keys, "verify"):
            # No key store, no way in: serving with auth never falls back to open or default credentials.
            raise StoreError("this store has no API keys (store.keys) yet, so a server with auth cannot start",
                             hint="use --no-auth on 127.0.0.1, or upgrade modelyard")
        self.keys = keys

    def verify(self, token: str) -> Principal:
        """A principal for a valid token; AuthError otherwise."""
        key = self.keys.verify(token)
        if key is None:  # a verify() that answers None for a bad token instead of raising
            raise AuthError("invalid API key")
        return Principal(key_id=str(key.id), name=str(getattr(key, "name", key.id)),
                         scopes=frozenset(str(s) for s in key.scopes),
                         expires_at=_epoch(getattr(key, "expires_at", None)))


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


class AuditLog:
    """Appends security events to the store's audit chain (``store.audit``), off the event loop."""

    def __init__(self, store: Any) -> None:
        self.audit = getattr(store, "audit", None)
        if self.audit is None:
            log.warning("this store has no audit chain (store.audit): security events go to the log only")

    def append_sync(self, *, actor: str, action: str, target: str, details: dict[str, Any],
                    outcome: str = "ok") -> None:
        """Append one event (blocking)."""
        if self.audit is None:
            log.warning("audit: %s %s %s %s %s", actor, action, target, outcome, details)
            return
        try:
            self.audit.append(actor=actor, action=action, target=target, outcome=outcome, details=details)
        except StoreError as exc:
            # The response must not hinge on the audit write; losing the event is logged loudly.
            log.error("audit append failed (%s): %s %s %s", exc, actor, action, target)

    async def append(self, *, actor: str, action: str, target: str, details: dict[str, Any],
                     outcome: str = "ok") -> None:
        """Append one event in a worker thread."""
        await asyncio.to_thread(self.append_sync, actor=actor, action=action, target=target, details=details,
                                outcome=outcome)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, or a 401.

    Args:
        verifier: checks tokens (the store's keys, or a fake in tests); None disables auth.
        audit: where failures are recorded.
        metrics: counts failures by reason.
        cache_s: how long a verified key is trusted without checking it again.
        clock: wall-clock seconds (tests pass a fake one).
    """

    def __init__(self, verifier: KeyVerifier | None, *, audit: AuditLog, metrics: ServeMetrics,
                 cache_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.verifier = verifier
        self.audit = audit
        self.metrics = metrics
        self.cache_s = cache_s
        self.clock = clock
        self._cache: dict[str, tuple[Principal, float]] = {}
        self.failures = RateLimiter(_FAILURES_PER_S, _FAILURE_BURST)

    @property
    def enabled(self) -> bool:
        """False when the server runs with ``--no-auth``."""
        return self.verifier is not None

    async def authenticate(self, request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """The caller of ``request``.

        Raises:
            ServeError: 401 for a missing, malformed, unknown, revoked or expired key.
        """
        if self.verifier is None:
            client = request.client.host if request.client else "local"
            return Principal(key_id=f"anonymous@{client}", name="anonymous", scopes=frozenset(SCOPES),
                             anonymous=True)
        if credentials is None or not credentials.credentials:
            await self.deny(request, "missing", "send `Authorization: Bearer <API key>`")
        assert credentials is not None
        token = credentials.credentials
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        wait = self.failures.peek(_client(request))
        if wait is not None:
            self.metrics.auth_failures.labels(reason="throttled").inc()
            raise ServeError(429, "rate_limited", "too many failed authentications from this address",
                             headers={"Retry-After": str(max(1, int(wait + 0.999)))})
        try:
            principal = await asyncio.to_thread(self.verifier.verify, token)
        except AuthError:
            await self.deny(request, "invalid", "invalid, revoked or expired API key")
        trusted_until = now + self.cache_s
        if principal.expires_at is not None:
            trusted_until = min(trusted_until, principal.expires_at)
        if len(self._cache) >= _MAX_CACHED_KEYS:
            self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = (principal, trusted_until)
        return principal

    def forget(self) -> None:
        """Drop every cached verification (the next request of each key is checked again)."""
        self._cache.clear()

    async def deny(self, request: Request, reason: str, message: str) -> None:
        """Record a refused request and raise the 401."""
        self.metrics.auth_failures.labels(reason=reason).inc()
        self.failures.acquire(_client(request))
        await self.audit.append(actor="anonymous", action="serve.auth_failed", target=request.url.path,
                                outcome="refused",
                                details={"reason": reason, "method": request.method, "client": _client(request)})
        raise ServeError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


AuthDecision = tuple[str, tuple[str, ...] | str]


def requires(*scopes: str) -> Any:
    """The route dependency: a valid key holding one of ``scopes`` (admin always), within its rate."""
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise ValueError(f"unknown scopes {unknown} (known: {SCOPES})")

    async def check(request: Request,
                    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # noqa: B008
                    authenticator: Authenticator = Depends(get_authenticator),  # noqa: B008
                    limiter: RateLimiter = Depends(get_rate_limiter)) -> Principal:  # noqa: B008
        principal = await authenticator.authenticate(request, credentials)
        if not principal.allows(scopes):
            authenticator.metrics.auth_failures.labels(reason="scope").inc()
            await authenticator.audit.append(
                actor=principal.actor, action="serve.forbidden", target=request.url.path, outcome="refused",
                details={"needs": list(scopes), "has": sorted(principal.scopes), "method": request.method,
                         "client": _client(request)})
            raise ServeError(403, "forbidden", f"this key lacks the {' or '.join(scopes)} scope")
        wait = limiter.acquire(principal.key_id)
        if wait is not None:
            authenticator.metrics.rate_limited.inc()
            raise ServeError(429, "rate_limited", "too many requests for this key; slow down",
                             headers={"Retry-After": str(max(1, int(wait + 0.999)))})
        request.state.principal = principal
        return principal

    check.auth_decision = ("scopes", tuple(scopes))  # type: ignore[attr-defined]
    return Depends(check)


def public(reason: str) -> Any:
    """The route dependency of a route anyone may call; ``reason`` says why that is safe."""
    if not reason:
        raise ValueError("say why the route may be public")

    async def open_route() -> None:
        return None

    open_route.auth_decision = ("public", reason)  # type: ignore[attr-defined]
    return Depends(open_route)


def auth_decision_of(dependency: Any) -> AuthDecision | None:
    """The decision a dependency callable carries, if it is one of :func:`requires` / :func:`public`."""
    return getattr(dependency, "auth_decision", None)


__all__ = ["SCOPES", "AuditLog", "Authenticator", "KeyVerifier", "Principal", "StoreKeyVerifier",
           "auth_decision_of", "bearer_scheme", "public", "requires"]
