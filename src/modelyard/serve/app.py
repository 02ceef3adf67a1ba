"""The FastAPI app: routers, error handlers, limits, metrics, and the models' lifespan.

:func:`create_app` builds the app; models load when it starts (the lifespan) and a
model that cannot load stops the start-up with its error; what start-up loaded is then
kept out of the garbage collector's full passes (``gc.freeze``) until shutdown. On
shutdown the server stops taking requests, finishes the ones in flight (uvicorn waits for
them, then the batchers drain their queues) and closes the store.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard import __version__
from modelyard.config.serve import CanaryConfig, ServeConfig
from modelyard.core.errors import ConfigError
from modelyard.core.logging import get_logger
from modelyard.serve.auth import AuditLog, Authenticator, KeyVerifier, StoreKeyVerifier
from modelyard.serve.cache import ResponseCache
from modelyard.serve.deps import ServeState
from modelyard.serve.errors import install_handlers
from modelyard.serve.hub import ModelHub
from modelyard.serve.inputs import Limits
from modelyard.serve.limits import InflightLimit, RequestLimits
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.predictor import resolve_device
from modelyard.serve.ratelimit import RateLimiter
from modelyard.serve.reload import watch_aliases
from modelyard.serve.routes import admin, health, ops, v1, v2
from modelyard.serve.shedding import QueueGate

log = get_logger("serve")

# How `yard serve --workers N` hands each worker process its settings (uvicorn starts them fresh).
SPEC_ENV = "YARD_SERVE_SPEC"


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, *, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(route=path, method=scope["method"], code=str(status)).inc()
            self.metrics.request_seconds.labels(route=path).observe(time.perf_counter() - started)


def create_app(cfg: ServeConfig, models: Sequence[str], *, store: Any = None, verifier: KeyVerifier | None = None,
               canaries: dict[str, CanaryConfig] | None = None, seed: int | None = None) -> FastAPI:
    """Build the serving app for ``models`` (``NAME@ALIAS``, ``NAME@vN`` or ``NAME``).

    Args:
        cfg: the serving config.
        models: what to serve; each name once.
        store: an open store (default: open the project store when the app starts, close it on stop).
        verifier: checks API keys (default: the store's keys; ignored when ``cfg.auth`` is false).
        canaries: model name → canary; ``cfg.canary`` applies to the only model when one is served.
        seed: seeds canary routing (tests pin it).

    Raises:
        ConfigError: no models, a model named twice, or a canary for a model not served.
    """
    if not models:
        raise ConfigError("name at least one model to serve (NAME@ALIAS)")
    names = [m.partition("@")[0] for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"each model may be served once, got {', '.join(models)}")
    canaries = dict(canaries or {})
    if cfg.canary is not None:
        if len(models) != 1:
            raise ConfigError("serve.canary needs exactly one served model; use --canary NAME@vN:PCT%")
        canaries.setdefault(names[0], cfg.canary)
    for name in canaries:
        if name not in names:
            raise ConfigError(f"canary for {name!r}, which is not served (served: {', '.join(names)})")
    metrics = ServeMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from modelyard.store import open_store

        own_store = store is None
        opened = open_store() if own_store else store
        try:
            state = _build_state(cfg, opened, metrics, verifier, seed)
            for uri in models:
                await state.hub.add(uri, canary=canaries.get(uri.partition("@")[0]))
            if cfg.reload_poll_s > 0:
                state.background.append(asyncio.get_running_loop().create_task(
                    watch_aliases(state.hub, cfg.reload_poll_s), name="watch-aliases"))
            app.state.serve = state
            # Everything loaded so far (torch, the models, the app) lives as long as the server: keep it out
            # of the collector's full passes, which otherwise scan it all and stalled every request in
            # flight for 0.1-0.3 s every couple of seconds under load (a p99 of 4-5x the median).
            gc.freeze()
            if not cfg.auth:
                log.warning("auth is OFF: anyone who reaches %s can call every route, admin ones included", cfg.host)
            yield
            state.draining = True
            for task in state.background:
                task.cancel()
            await asyncio.gather(*state.background, return_exceptions=True)
            await state.hub.close(drain=True)
        finally:
            gc.unfreeze()
            if own_store:
                opened.close()

    app = FastAPI(title="modelyard serving", version=__version__, lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None, redirect_slashes=False,
                  description="Open Inference Protocol v2 and a plain JSON API for models in a modelyard registry.")
    app.router.redirect_slashes = False
    install_handlers(app)
    # Outermost last: metrics, then in-flight limit, then body limits, then the full-queue gate, then routes.
    app.add_middleware(QueueGate,
                       on_error=lambda code, status: metrics.errors.labels(error=code, code=str(status)).inc())
    app.add_middleware(RequestLimits, max_body_bytes=cfg.max_body_bytes,
                       on_error=lambda code, status: metrics.errors.labels(error=code, code=str(status)).inc())
    app.add_middleware(InflightLimit, max_inflight=cfg.max_inflight, retry_after_s=cfg.retry_after_s,
                       on_error=lambda code, status: metrics.errors.labels(error=code, code=str(status)).inc())
    app.add_middleware(RequestMetrics, metrics=metrics)
    for module in (health, v2, v1, admin, ops):
        app.include_router(module.router)
    app.state.metrics = metrics
    return app


def _build_state(cfg: ServeConfig, store: Any, metrics: ServeMetrics, verifier: KeyVerifier | None,
                 seed: int | None) -> ServeState:
    audit = AuditLog(store)
    if cfg.auth:
        verifier = verifier or StoreKeyVerifier(store)
    else:
        verifier = None
    hub = ModelHub(store, cfg, metrics, device=resolve_device(cfg.device), seed=seed)
    authenticator = Authenticator(verifier, audit=audit, metrics=metrics, cache_s=cfg.auth_cache_s)
    return ServeState(cfg=cfg, store=store, hub=hub, metrics=metrics, cache=ResponseCache(cfg.cache_max_bytes),
                      authenticator=authenticator, limiter=RateLimiter(cfg.rate_limit_per_s, cfg.rate_limit_burst),
                      audit=audit, limits=Limits(max_instances=cfg.max_instances,
                                                 max_string_length=cfg.max_string_length))


def default_threads(cores: int, workers: int) -> int:
    """Intra-op threads per worker: its share of the cores less one for its event loop (at least 1).

    The event loop parses, validates and answers every request while a batch runs; when
    torch's threads take all of a worker's cores they take turns with it (and spin while
    waiting for each other). On 2 cores shared with other work, 2 threads made a one-image
    forward pass 1.5x to 50x slower than 1 thread, and the unbatched server lost a third of
    its throughput.
    """
    return max(1, cores // workers - 1)


def configure_threads(cfg: ServeConfig) -> int:
    """Set torch's intra-op threads for this worker: ``cfg.threads``, else :func:`default_threads`."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = cfg.threads or default_threads(cores, cfg.workers)
    torch.set_num_threads(threads)
    return threads


def app_from_env() -> FastAPI:
    """The app of one ``yard serve --workers N`` worker, from the settings the CLI put in ``$YARD_SERVE_SPEC``."""
    from modelyard.core.logging import configure

    configure("INFO")
    raw = json.loads(os.environ[SPEC_ENV])
    cfg = ServeConfig.model_validate(raw["config"])
    configure_threads(cfg)
    canaries = {name: CanaryConfig.model_validate(c) for name, c in (raw.get("canaries") or {}).items()}
    return create_app(cfg, raw["models"], canaries=canaries)


__all__ = ["SPEC_ENV", "RequestMetrics", "app_from_env", "configure_threads", "create_app", "default_threads"]
