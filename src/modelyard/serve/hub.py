"""The served models: per name, the version its alias points at and an optional canary.

A :class:`Deployment` is one loaded model version with its own batcher (queue and
inference thread). A :class:`ModelEndpoint` is what clients address by name: its primary
deployment, a canary taking a share of the traffic, and the outcome of the last reload.
The :class:`ModelHub` owns them all; swapping a deployment is one attribute assignment
on the event loop, so a request sees the old version or the new one, never a mix.
Hot reload and canary changes live in ``serve/reload.py``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from modelyard.config.serve import CanaryConfig, ServeConfig
from modelyard.core.logging import get_logger
from modelyard.core.refs import ModelRef
from modelyard.serve.batching import DynamicBatcher
from modelyard.serve.errors import ServeError, shorten
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.predictor import Predictor, load_predictor, smoke_check
from modelyard.store.project import Store
from modelyard.store.registry import ModelVersion, parse_model_uri

log = get_logger("serve")


@dataclass(eq=False)
class Deployment:
    """One loaded model version and its batcher."""

    name: str
    version: int
    ref: ModelRef
    predictor: Predictor
    batcher: DynamicBatcher
    role: str  # primary | canary
    loaded_at: float = field(default_factory=time.time)

    @property
    def cache_id(self) -> str:
        """Names the exact weights and runtime, for response-cache keys."""
        return f"{self.ref.id}/{self.predictor.runtime}"

    @property
    def label(self) -> str:
        """The version as a metric label and a v2 version string."""
        return str(self.version)


@dataclass
class ReloadOutcome:
    """What one reload attempt did."""

    outcome: str  # unchanged | swapped | failed
    from_version: int
    to_version: int | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"outcome": self.outcome, "from_version": self.from_version, "to_version": self.to_version,
                "error": self.error, "at": self.at}


@dataclass(eq=False)
class ModelEndpoint:
    """A model name as clients see it."""

    name: str
    selector: str | None  # the alias (or vN) followed; None follows the latest version
    primary: Deployment
    canary: Deployment | None = None
    canary_share: float = 0.0
    last_reload: ReloadOutcome | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def uri(self) -> str:
        """``name@selector`` as given to ``yard serve``."""
        return f"{self.name}@{self.selector}" if self.selector else self.name

    def deployments(self) -> list[Deployment]:
        """Primary first, then the canary."""
        return [self.primary] + ([self.canary] if self.canary is not None else [])

    def choose(self, rng: random.Random) -> Deployment:
        """The deployment for one request: the canary with probability ``canary_share``."""
        if self.canary is not None and rng.random() < self.canary_share:
            return self.canary
        return self.primary

    def by_version(self, version: str) -> Deployment:
        """The deployment serving ``version`` (``3`` or ``v3``).

        Raises:
            ServeError: 404 when that version is not being served.
        """
        text = version.removeprefix("v")
        for deployment in self.deployments():
            if text.isdigit() and int(text) == deployment.version:
                return deployment
        served = ", ".join(d.label for d in self.deployments())
        raise ServeError(404, "not_found", f"version {shorten(version, 20)} of {self.name!r} is not served "
                         f"(served: {served})", field="version")


class ModelHub:
    """Loads, holds and swaps the served models.

    Args:
        store: the project store (models resolve through its registry).
        cfg: the serving config (batching, queue, canary).
        metrics: where deployments report.
        device: ``cpu`` or ``cuda`` (already resolved).
        seed: seeds the canary routing draws (tests pin it).
    """

    def __init__(self, store: Store, cfg: ServeConfig, metrics: ServeMetrics, *, device: str = "cpu",
                 seed: int | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.metrics = metrics
        self.device = device
        self.rng = random.Random(seed)
        self.endpoints: dict[str, ModelEndpoint] = {}
        self._retired: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ loading

    def resolve(self, uri: str) -> ModelVersion:
        """The registry version ``uri`` points at now (blocking: call in a thread)."""
        return self.store.models.resolve(uri)

    def load(self, version: ModelVersion) -> Predictor:
        """Load and smoke-test ``version`` (blocking: call in a thread)."""
        predictor = load_predictor(self.store, version.ref, device=self.device)
        smoke_check(predictor)
        return predictor

    def deploy(self, version: ModelVersion, predictor: Predictor, role: str) -> Deployment:
        """Wrap a loaded predictor in a started batcher (on the event loop)."""
        labels = {"model": version.name, "version": str(version.version)}
        batch_size = self.metrics.batch_size.labels(**labels)
        batch_seconds = self.metrics.batch_seconds.labels(**labels)
        depth = self.metrics.queue_depth.labels(**labels)

        def on_batch(size: int, seconds: float) -> None:
            batch_size.observe(size)
            batch_seconds.observe(seconds)

        batcher = DynamicBatcher(predictor.predict, max_batch_size=self.cfg.max_batch_size,
                                 max_latency_s=self.cfg.max_batch_latency_ms / 1000.0, max_queue=self.cfg.max_queue,
                                 retry_after_s=self.cfg.retry_after_s, on_batch=on_batch, on_depth=depth.set,
                                 name=version.uri)
        batcher.start()
        self.metrics.loaded.labels(role=role, **labels).set(1)
        return Deployment(name=version.name, version=version.version, ref=version.ref, predictor=predictor,
                          batcher=batcher, role=role)

    async def add(self, uri: str, *, canary: CanaryConfig | None = None) -> ModelEndpoint:
        """Resolve, load, smoke-test and start serving ``uri`` (and its canary).

        Raises:
            ConfigError, NotFoundError, ArtifactError: the model cannot be served.
        """
        name, selector = parse_model_uri(uri)
        version = await asyncio.to_thread(self.resolve, uri)
        predictor = await asyncio.to_thread(self.load, version)
        endpoint = ModelEndpoint(name=name, selector=selector, primary=self.deploy(version, predictor, "primary"))
        self.endpoints[name] = endpoint
        log.info("serving %s → %s (%s)", uri, version.uri, predictor.runtime)
        if canary is not None:
            canary_version = await asyncio.to_thread(self.store.models.get, name, canary.version)
            canary_predictor = await asyncio.to_thread(self.load, canary_version)
            endpoint.canary = self.deploy(canary_version, canary_predictor, "canary")
            endpoint.canary_share = canary.share
            log.info("canary %s takes %.1f%% of %s", canary_version.uri, 100 * canary.share, name)
        return endpoint

    def get(self, name: str) -> ModelEndpoint:
        """The endpoint called ``name``.

        Raises:
            ServeError: 404 when no such model is served.
        """
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise ServeError(404, "not_found", f"model {shorten(name, 80)} is not served "
                             f"(served: {', '.join(sorted(self.endpoints)) or 'none'})", field="name")
        return endpoint

    # ------------------------------------------------------------------ retiring

    def retire(self, deployment: Deployment) -> None:
        """Stop routing to ``deployment`` (already swapped out) and close it once its queue drained."""
        self.metrics.loaded.remove(deployment.name, deployment.label, deployment.role)

        async def drain() -> None:
            await deployment.batcher.close(drain=True)

        task = asyncio.get_running_loop().create_task(drain(), name=f"retire-{deployment.name}-v{deployment.version}")
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def close(self, *, drain: bool = True) -> None:
        """Finish (or fail) queued requests and stop every deployment."""
        for endpoint in self.endpoints.values():
            for deployment in endpoint.deployments():
                await deployment.batcher.close(drain=drain)
        if self._retired:
            await asyncio.gather(*self._retired)


__all__ = ["Deployment", "ModelEndpoint", "ModelHub", "ReloadOutcome"]
