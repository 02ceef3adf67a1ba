"""Hot reload when an alias moves, and canary changes, without dropping a request.

:func:`reload_endpoint` resolves the endpoint's alias; when it points at another version,
that version loads and runs a smoke prediction *in a background thread* while the old
one keeps serving. Only if both succeed is the new deployment swapped in (one assignment
on the event loop); the old one then finishes its queue and stops. If either fails, the
old version keeps serving and the failure is logged, counted
(``yard_model_reloads_total{outcome="failed"}``) and shown in the model's metadata.

:func:`watch_aliases` runs :func:`reload_endpoint` for every endpoint every
``reload_poll_s`` seconds; each worker process does this on its own against the shared
store, so replicas converge on the alias within one poll interval.
"""

from __future__ import annotations

import asyncio

from modelyard.config.serve import CanaryConfig
from modelyard.core.errors import NotFoundError, YardError
from modelyard.core.logging import get_logger
from modelyard.serve.errors import ServeError
from modelyard.serve.hub import ModelEndpoint, ModelHub, ReloadOutcome

log = get_logger("serve.reload")


async def reload_endpoint(hub: ModelHub, endpoint: ModelEndpoint) -> ReloadOutcome:
    """Follow ``endpoint``'s alias: swap in the version it points at now, if that loads and passes the smoke test."""
    async with endpoint.lock:
        current = endpoint.primary
        try:
            target = await asyncio.to_thread(hub.resolve, endpoint.uri)
        except YardError as exc:
            return _failed(hub, endpoint, current.version, None, f"cannot resolve {endpoint.uri}: {exc}")
        if target.version == current.version and target.ref.id == current.ref.id:
            return ReloadOutcome("unchanged", current.version, current.version)
        log.info("%s moved from v%d to v%d: loading in the background", endpoint.uri, current.version,
                 target.version)
        try:
            predictor = await asyncio.to_thread(hub.load, target)
        except Exception as exc:  # noqa: BLE001 - whatever breaks the new version, the old one keeps serving
            return _failed(hub, endpoint, current.version, target.version, f"{type(exc).__name__}: {exc}")
        endpoint.primary = hub.deploy(target, predictor, "primary")
        hub.retire(current)
        outcome = ReloadOutcome("swapped", current.version, target.version)
        endpoint.last_reload = outcome
        hub.metrics.reloads.labels(model=endpoint.name, outcome="swapped").inc()
        log.info("%s now serves v%d (was v%d)", endpoint.uri, target.version, current.version)
        return outcome


def _failed(hub: ModelHub, endpoint: ModelEndpoint, from_version: int, to_version: int | None,
            error: str) -> ReloadOutcome:
    outcome = ReloadOutcome("failed", from_version, to_version, error=error)
    endpoint.last_reload = outcome
    hub.metrics.reloads.labels(model=endpoint.name, outcome="failed").inc()
    log.warning("reload of %s failed, still serving v%d: %s", endpoint.uri, from_version, error)
    return outcome


async def set_canary(hub: ModelHub, endpoint: ModelEndpoint, canary: CanaryConfig | None) -> None:
    """Route ``canary.share`` of ``endpoint``'s traffic to ``canary.version`` (None: stop the canary).

    Raises:
        ServeError: 404 for a version that does not exist, 400 for the primary's own version,
            400 when it fails to load or its smoke test.
    """
    async with endpoint.lock:
        old = endpoint.canary
        if canary is None:
            endpoint.canary, endpoint.canary_share = None, 0.0
            if old is not None:
                hub.retire(old)
            return
        if canary.version == endpoint.primary.version:
            raise ServeError(400, "invalid_input", f"v{canary.version} is already the primary version",
                             field="version")
        if old is not None and old.version == canary.version:
            endpoint.canary_share = canary.share
            return
        try:
            version = await asyncio.to_thread(hub.store.models.get, endpoint.name, canary.version)
        except NotFoundError:
            raise ServeError(404, "not_found", f"{endpoint.name}@v{canary.version} does not exist",
                             field="version") from None
        try:
            predictor = await asyncio.to_thread(hub.load, version)
        except Exception as exc:  # noqa: BLE001 - any load failure is the admin's to see, not a 500
            raise ServeError(400, "canary_failed", f"{version.uri} cannot be served: {exc}", field="version") from None
        endpoint.canary = hub.deploy(version, predictor, "canary")
        endpoint.canary_share = canary.share
        if old is not None:
            hub.retire(old)


async def watch_aliases(hub: ModelHub, poll_s: float) -> None:
    """Check every endpoint's alias every ``poll_s`` seconds until cancelled."""
    while True:
        await asyncio.sleep(poll_s)
        for endpoint in list(hub.endpoints.values()):
            if endpoint.selector is not None and endpoint.selector.removeprefix("v").isdigit():
                continue  # NAME@vN is pinned: nothing to follow
            await reload_endpoint(hub, endpoint)


__all__ = ["reload_endpoint", "set_canary", "watch_aliases"]
