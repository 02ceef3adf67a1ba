"""Fixtures of the serving tests: a session store with real tiny models, fake API keys, app factories.

The models are trained once per session by the real pipeline (a few seconds):
``tiny-iris`` v1 (alias ``staging``) and v2 (alias ``candidate``, another seed) on iris
with an MLP, and ``tiny-digits`` v1 (``staging``) on 8x8 digits with a small CNN.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.config.serve import ServeConfig
from modelyard.core.errors import AuthError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.serve import create_app
from modelyard.serve.auth import Principal
from tests.conftest import TINY_RECIPE

DIGITS_RECIPE = (TINY_RECIPE.replace("tiny-iris", "tiny-digits").replace("name: iris", "name: digits")
                 .replace("name: mlp\n  params: {hidden: [32], dropout: 0.0}",
                          "name: cnn\n  params: {channels: [8, 16], dropout: 0.0}")
                 .replace("epochs: 30", "epochs: 2"))
IRIS_V2_RECIPE = TINY_RECIPE.replace("seed: 3", "seed: 4") + "register: {alias: candidate}\n"

ADMIN, PREDICT, READ = "admin-key-0123456789", "predict-key-0123456789", "read-key-0123456789"
IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@dataclass
class ServeModels:
    """The session's store and what it holds."""

    store: Any
    root: Path
    iris_v1: ModelRef
    iris_v2: ModelRef
    digits: ModelRef


@pytest.fixture(scope="session")
def serve_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeModels]:
    """Train and register the tiny models once for every serving test."""
    from modelyard.config.loader import parse_yaml, validate_recipe
    from modelyard.pipeline import run_recipe
    from modelyard.store import open_store

    root = tmp_path_factory.mktemp("serve-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MPLCONFIGDIR", str(root / "mpl"))
        mp.setenv("MPLBACKEND", "Agg")
        with open_store(root / "store") as store:
            refs = []
            for text in (TINY_RECIPE, IRIS_V2_RECIPE, DIGITS_RECIPE):
                # Serving needs registered models, not their explanations: skip that stage (and its time).
                recipe = validate_recipe(parse_yaml(text + "explain: {enabled: false}\n", source="<test>"))
                refs.append(run_recipe(recipe, store, report_dir=root / "reports").model)
            yield ServeModels(store=store, root=root / "store", iris_v1=refs[0], iris_v2=refs[1], digits=refs[2])


@dataclass
class FakeKeys:
    """An in-memory key store with the interface ``serve/auth.py`` expects of ``store.keys``."""

    principals: dict[str, Principal] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    calls: int = 0
    clock: Callable[[], float] = time.time

    def add(self, token: str, *scopes: str, expires_at: float | None = None) -> None:
        self.principals[token] = Principal(key_id=f"key-{token[:5]}", name=token[:5], scopes=frozenset(scopes),
                                           expires_at=expires_at)

    def verify(self, token: str) -> Principal:
        self.calls += 1
        principal = self.principals.get(token)
        if principal is None or token in self.revoked:
            raise AuthError("invalid API key")
        if principal.expires_at is not None and principal.expires_at <= self.clock():
            raise AuthError("expired API key")
        return principal


def expected_outputs(models: ServeModels, ref: ModelRef, x: Any) -> Any:
    """A model's outputs computed without the server: the data stage's own transform, then the runtime."""
    import pandas as pd

    from modelyard.data import open_dataset
    from modelyard.runtime import load_model, predict_outputs

    loaded = load_model(models.store, ref)
    if loaded.spec["modality"] == "tabular":
        (parent, _relation), = [p for p in models.store.artifacts.parents(ref.id) if p[1] == "trained_from"]
        dataset = open_dataset(models.store, DatasetRef(id=parent))
        x = dataset.preprocessor.transform(pd.DataFrame(x, columns=dataset.schema.features))
    return predict_outputs(loaded, x)


def register_copy(models: ServeModels, name: str, refs: list[ModelRef], alias: str = "prod") -> None:
    """Register ``refs`` as versions 1, 2, … of a fresh model ``name``, ``alias`` on v1 (tests that move aliases)."""
    for i, ref in enumerate(refs):
        models.store.models.register(name, ref, alias=alias if i == 0 else None)


def fake_keys() -> FakeKeys:
    keys = FakeKeys()
    keys.add(ADMIN, "admin")
    keys.add(PREDICT, "predict")
    keys.add(READ, "read")
    return keys


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def serve_config(**overrides: Any) -> ServeConfig:
    """Test defaults: no alias polling (tests reload on demand), generous rate limits."""
    base: dict[str, Any] = {"reload_poll_s": 0.0, "rate_limit_per_s": 10_000.0, "rate_limit_burst": 10_000}
    return ServeConfig.model_validate({**base, **overrides})


def make_app(models: ServeModels, uris: list[str] | None = None, *, keys: FakeKeys | None = None, seed: int = 0,
             **overrides: Any) -> FastAPI:
    return create_app(serve_config(**overrides), uris or ["tiny-iris@staging", "tiny-digits@staging"],
                      store=models.store, verifier=keys if keys is not None else fake_keys(), seed=seed)


@pytest.fixture
def client(serve_models: ServeModels) -> Iterator[TestClient]:
    """A started app serving tiny-iris@staging and tiny-digits@staging with auth (fake keys)."""
    with TestClient(make_app(serve_models)) as test_client:
        yield test_client


class LiveServer:
    """A real uvicorn on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        import uvicorn

        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=10))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def live_server(serve_models: ServeModels) -> Iterator[LiveServer]:
    """The default app under a real uvicorn on 127.0.0.1 (random free port)."""
    server = LiveServer(make_app(serve_models)).start()
    try:
        yield server
    finally:
        server.stop()
