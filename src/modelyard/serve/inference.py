"""One prediction request from decoded batch to output rows: cache, batch queue, timeout, disconnect.

Both APIs (``/v2 … /infer`` and ``/v1 … :predict``) decode their inputs and then call
:func:`predict_rows`, which answers what it can from the response cache, sends the rest
through the deployment's batcher and waits for whichever comes first: the outputs, the
request timeout (504) or the client hanging up (the work is dropped). Metrics are kept
per model version.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from fastapi import Request

from modelyard.serve.cache import input_key
from modelyard.serve.deps import ServeState
from modelyard.serve.errors import ServeError
from modelyard.serve.hub import Deployment
from modelyard.serve.inputs import Batch, batch_len, items, take

# Status for a client that hung up (nginx's convention); nobody reads it, the metrics and logs do.
CLIENT_CLOSED = 499


class ClientGone(ServeError):
    """The client disconnected before its answer was ready."""

    def __init__(self) -> None:
        super().__init__(CLIENT_CLOSED, "client_closed", "the client closed the connection")


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body was read already, so only a disconnect arrives)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _await_with_guards(state: ServeState, request: Request, work: asyncio.Future[np.ndarray],
                             timeout_s: float) -> np.ndarray:
    """``work``'s result, unless the timeout passes or the client leaves first (then ``work`` is cancelled)."""
    watcher = asyncio.ensure_future(_disconnected(request))
    waiting: set[asyncio.Future[Any]] = {work, watcher}
    try:
        done, _pending = await asyncio.wait(waiting, timeout=timeout_s,
                                            return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if work in done:
        return work.result()
    work.cancel()
    if watcher in done:
        raise ClientGone()
    raise ServeError(504, "timeout", f"no answer within {timeout_s:g} s; the request was dropped")


def refuse_if_full(state: ServeState, deployment: Deployment) -> None:
    """503 + Retry-After before the body is read when the deployment's queue is full.

    A refusal then costs no parsing or decoding. (A request the response cache could have
    answered is refused too: under overload every client is told to come back later.)

    Raises:
        ServeError: 503 queue full.
    """
    try:
        deployment.batcher.check_room()
    except ServeError:
        state.metrics.rejected.labels(model=deployment.name, version=deployment.label).inc()
        raise


async def predict_rows(state: ServeState, request: Request, deployment: Deployment, batch: Batch) -> np.ndarray:
    """Output rows ``(N, K)`` for a decoded batch, from the cache and the batcher.

    Raises:
        ServeError: 503 queue full, 504 timeout, 499 client gone, 500 inference failed.
    """
    labels = {"model": deployment.name, "version": deployment.label}
    metrics = state.metrics
    started = time.perf_counter()
    count = batch_len(batch)
    cache = state.cache
    keys: list[str] = []
    rows: list[np.ndarray | None] = [None] * count
    if cache.enabled:
        keys = [input_key(deployment.cache_id, item) for item in items(batch)]
        rows = [cache.get(key) for key in keys]
        hits = sum(row is not None for row in rows)
        if hits:
            metrics.cache_hits.labels(**labels).inc(hits)
        if hits < count:
            metrics.cache_misses.labels(**labels).inc(count - hits)
    missing = [i for i, row in enumerate(rows) if row is None]
    outcome = "ok"
    try:
        if missing:
            todo = batch if len(missing) == count else take(batch, missing)
            work = asyncio.ensure_future(deployment.batcher.submit(todo))
            fresh = await _await_with_guards(state, request, work, state.cfg.request_timeout_s)
            for j, i in enumerate(missing):
                rows[i] = fresh[j]
                if cache.enabled and np.isfinite(fresh[j]).all():
                    cache.put(keys[i], fresh[j])
            if cache.enabled:
                metrics.cache_bytes.set(cache.bytes)
    except ServeError as exc:
        outcome = {503: "rejected", 504: "timeout", CLIENT_CLOSED: "disconnected"}.get(exc.status, "error")
        if exc.status == 503:
            metrics.rejected.labels(**labels).inc()
        raise
    finally:
        metrics.predictions.labels(outcome=outcome, **labels).inc(count)
        metrics.inference_seconds.labels(**labels).observe(time.perf_counter() - started)
    return np.stack(rows)  # type: ignore[arg-type]


def check_finite(rows: np.ndarray, field: str) -> None:
    """400 naming the first input whose outputs overflowed (finite but huge inputs can do that)."""
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if len(bad):
        raise ServeError(400, "invalid_input", "the model's outputs are not finite for this input (values out of "
                         "the range the model was trained on?)", field=f"{field}[{int(bad[0])}]")


async def explain_rows(state: ServeState, deployment: Deployment, batch: Batch, targets: np.ndarray) -> np.ndarray:
    """Attributions for ``batch`` towards ``targets``, on the deployment's inference thread.

    Explanations skip the batch queue (they need gradients); at most a few wait at once,
    beyond that the request gets 503.

    Raises:
        ServeError: 400 when explanations are off, 503 when too many are waiting, 504 on timeout.
    """
    if not state.cfg.explain:
        raise ServeError(400, "explain_disabled", "explanations are turned off on this server", field="explain")
    if state.explain_slots.locked():
        raise ServeError(503, "explain_busy", "too many explanations in progress; retry later",
                         headers={"Retry-After": str(state.cfg.retry_after_s)})
    async with state.explain_slots:
        try:
            return await asyncio.wait_for(
                deployment.batcher.run_exclusive(deployment.predictor.attribute, batch, targets),
                state.cfg.request_timeout_s)
        except TimeoutError:
            raise ServeError(504, "timeout", "explanation took too long") from None


__all__ = ["CLIENT_CLOSED", "ClientGone", "check_finite", "explain_rows", "predict_rows", "refuse_if_full"]
