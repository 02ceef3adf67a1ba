"""FastAPI dependencies: the routes get the server's parts from here, tests swap them.

    app.dependency_overrides[get_authenticator] = lambda: Authenticator(FakeKeys(), …)

Everything lives on one :class:`ServeState` at ``app.state.serve``, built by
``serve/app.py`` at start-up.

The getters are ``async def`` although they do not await: FastAPI runs a plain ``def``
dependency in its thread pool, and three such hops per request (state, authenticator,
rate limiter) cost more event-loop time than the rest of a small prediction's handling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

if TYPE_CHECKING:
    from modelyard.config.serve import ServeConfig
    from modelyard.serve.auth import AuditLog, Authenticator
    from modelyard.serve.cache import ResponseCache
    from modelyard.serve.hub import ModelHub
    from modelyard.serve.inputs import Limits
    from modelyard.serve.metrics import ServeMetrics
    from modelyard.serve.ratelimit import RateLimiter


@dataclass
class ServeState:
    """The server's parts, shared by every request of one worker process."""

    cfg: ServeConfig
    store: Any
    hub: ModelHub
    metrics: ServeMetrics
    cache: ResponseCache
    authenticator: Authenticator
    limiter: RateLimiter
    audit: AuditLog
    limits: Limits
    # Explanations bypass the batch queue; this bounds how many may wait for the inference thread.
    explain_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    draining: bool = False
    background: list[asyncio.Task[None]] = field(default_factory=list)


def _state(request: Request) -> ServeState:
    return request.app.state.serve  # type: ignore[no-any-return]


async def get_state(request: Request) -> ServeState:
    """The worker's :class:`ServeState`."""
    return _state(request)


async def get_hub(request: Request) -> ModelHub:
    """The served models."""
    return _state(request).hub


async def get_authenticator(request: Request) -> Authenticator:
    """Checks bearer keys (swap in tests for a fake key store)."""
    return _state(request).authenticator


async def get_rate_limiter(request: Request) -> RateLimiter:
    """The per-key token buckets."""
    return _state(request).limiter


async def get_metrics(request: Request) -> ServeMetrics:
    """The Prometheus metrics."""
    return _state(request).metrics


__all__ = ["ServeState", "get_authenticator", "get_hub", "get_metrics", "get_rate_limiter", "get_state"]
