"""The project store: runs, params, metric series, content-addressed artifacts, and the
model registry (versions, aliases). SQLite (WAL) by default, PostgreSQL by URL. No torch.

    with open_store() as store:
        run_id = store.runs.create(kind="train", name="digits", config={})
"""

from __future__ import annotations

from modelyard.store.context import RunContext
from modelyard.store.project import Store, default_root, open_store
from modelyard.store.registry import ModelVersion, parse_model_uri

__all__ = ["ModelVersion", "RunContext", "Store", "default_root", "open_store", "parse_model_uri"]
