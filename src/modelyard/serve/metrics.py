"""Prometheus metrics of the server, per model version where it matters.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so tests can build
many apps in one process. With several worker processes (``yard serve --workers N``) the
CLI sets ``PROMETHEUS_MULTIPROC_DIR`` and :meth:`ServeMetrics.render` adds up every
worker's values, so one scrape sees the whole server whichever worker answers it.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency buckets from 1 ms to 10 s: a served model answers in milliseconds, a timeout takes seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """The server's counters, histograms and gauges.

    Labels: ``model`` and ``version`` (the registry's name and version number) on everything
    about inference, ``route`` (the path template) and ``code`` (HTTP status) on requests,
    ``error`` (our error code) on errors.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("yard_http_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "code"], registry=r)
        self.request_seconds = Histogram("yard_http_request_duration_seconds", "HTTP request latency by route.",
                                         ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.errors = Counter("yard_http_errors", "Error responses by error code and status.",
                              ["error", "code"], registry=r)
        self.predictions = Counter("yard_predictions", "Inputs predicted, by model version and outcome.",
                                   ["model", "version", "outcome"], registry=r)
        self.inference_seconds = Histogram("yard_inference_request_duration_seconds",
                                           "Time from a decoded request to its outputs, per model version.",
                                           ["model", "version"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("yard_batch_size", "Inputs per forward pass.", ["model", "version"],
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("yard_batch_duration_seconds", "Time of one forward pass.",
                                       ["model", "version"], buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("yard_queue_depth", "Inputs waiting for a batch.", ["model", "version"],
                                 multiprocess_mode="livesum", registry=r)
        self.rejected = Counter("yard_queue_rejected", "Requests refused because the queue was full (503).",
                                ["model", "version"], registry=r)
        self.cache_hits = Counter("yard_cache_hits", "Inputs answered from the response cache.",
                                  ["model", "version"], registry=r)
        self.cache_misses = Counter("yard_cache_misses", "Inputs not in the response cache.",
                                    ["model", "version"], registry=r)
        self.cache_bytes = Gauge("yard_cache_bytes", "Bytes held by the response cache.",
                                 multiprocess_mode="livesum", registry=r)
        self.loaded = Gauge("yard_model_loaded", "1 for each model version being served, by role.",
                            ["model", "version", "role"], multiprocess_mode="livemax", registry=r)
        self.reloads = Counter("yard_model_reloads", "Hot reloads by outcome (swapped, failed).",
                               ["model", "outcome"], registry=r)
        self.auth_failures = Counter("yard_auth_failures", "Refused credentials by reason.", ["reason"], registry=r)
        self.rate_limited = Counter("yard_rate_limited", "Requests refused by the per-key rate limit (429).",
                                    registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers' values in multi-process mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["ServeMetrics"]
