"""Run the app under uvicorn: one process, or N stateless workers sharing the store.

Each worker loads the models itself and follows their aliases in the shared store
(SQLite on one machine, PostgreSQL for replicas on several), so workers and replicas
need nothing from each other: put any load balancer in front.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence

from modelyard.config.serve import CanaryConfig, ServeConfig
from modelyard.core.logging import get_logger

log = get_logger("serve")

# Seconds uvicorn waits for in-flight requests after SIGTERM/SIGINT before closing them.
GRACEFUL_SHUTDOWN_S = 30


def run(cfg: ServeConfig, models: Sequence[str], *, canaries: dict[str, CanaryConfig] | None = None) -> None:
    """Serve ``models`` until interrupted (SIGINT / SIGTERM finish in-flight requests first).

    Raises:
        ConfigError: invalid models or canaries.
        StoreError, NotFoundError, ArtifactError: a model cannot be served (start-up fails).
    """
    import uvicorn

    from modelyard.serve.app import SPEC_ENV, configure_threads, create_app

    common = {"host": cfg.host, "port": cfg.port, "log_level": "info", "access_log": False,
              "server_header": False, "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S}
    if cfg.workers == 1:
        configure_threads(cfg)
        app = create_app(cfg, models, canaries=canaries)
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    # Several workers: uvicorn starts each from an import string, so the settings travel in the environment,
    # and Prometheus counters go to a shared folder that /metrics adds up.
    create_app(cfg, models, canaries=canaries)  # validates models and canaries before any worker starts
    spec = {"config": cfg.model_dump(mode="json"), "models": list(models),
            "canaries": {k: v.model_dump(mode="json") for k, v in (canaries or {}).items()}}
    os.environ[SPEC_ENV] = json.dumps(spec)
    with tempfile.TemporaryDirectory(prefix="yard-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        log.info("starting %d workers on %s:%d", cfg.workers, cfg.host, cfg.port)
        uvicorn.run("modelyard.serve.app:app_from_env", factory=True, workers=cfg.workers, **common)  # type: ignore[arg-type]
