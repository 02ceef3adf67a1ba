"""Stage 8, serve: ``NAME@ALIAS`` in the registry → an HTTP app (the data plane).

Open Inference Protocol v2 (``/v2/...``, so tritonclient and KServe clients work), a
plain JSON API (``/v1/models/{name}:predict``), Prometheus ``/metrics``; dynamic
batching with a bounded queue, a response cache, bearer-key auth with scopes and rate
limits, hot reload when the alias moves, and a canary share. See ``docs/serving.md``.

    yard serve digits@production --port 8000 --workers 2 --canary digits@v4:10%

The layout: ``app.py`` builds the app from ``routes/*``; ``deps.py`` hands routes the
server's parts; ``inputs.py`` decodes raw inputs per modality; ``predictor.py`` is the
runtime seam; ``batching.py``, ``cache.py``, ``auth.py``, ``ratelimit.py``, ``limits.py``,
``metrics.py``; ``hub.py`` and ``reload.py`` hold and swap model versions; ``server.py``
runs uvicorn.
"""

from __future__ import annotations

from modelyard.serve.app import create_app
from modelyard.serve.server import run

__all__ = ["create_app", "run"]
