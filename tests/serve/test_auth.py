"""Auth: every route has an explicit decision; 401 / 403 / 429 with the JSON error; audit; the key adapter."""

from __future__ import annotations

import logging
import types
from datetime import timedelta
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import ValidationError

from modelyard.config.serve import ServeConfig
from modelyard.core.errors import StoreError
from modelyard.serve import create_app
from modelyard.serve.auth import StoreKeyVerifier, auth_decision_of
from tests.serve.conftest import ADMIN, PREDICT, READ, FakeKeys, ServeModels, bearer, fake_keys, make_app, serve_config

IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def _decisions(dependant: Any) -> list[tuple[str, Any]]:
    found = []
    for dependency in dependant.dependencies:
        decision = auth_decision_of(dependency.call)
        if decision is not None:
            found.append(decision)
        found += _decisions(dependency)
    return found


def _route_table(app: FastAPI) -> list[Any]:
    """Every route the app answers, with included routers flattened (FastAPI >= 0.13x keeps them nested)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten is not None else list(app.routes)


def _audit_routes(app: FastAPI) -> tuple[set[str], set[str], list[str]]:
    """(public paths, admin-only paths, routes lacking exactly one decision)."""
    public, admin, missing = set(), set(), []
    for route in _route_table(app):
        dependant = getattr(route, "dependant", None)
        # Only API routes carry dependencies; a bare Starlette route (docs, static files, mounts) has no decision.
        decisions = _decisions(dependant) if dependant is not None else []
        if len(decisions) != 1:
            missing.append(f"{sorted(route.methods or [])} {route.path}: {decisions}")
            continue
        kind, detail = decisions[0]
        if kind == "public":
            public.add(route.path)
        elif detail == ("admin",):
            admin.add(route.path)
    return public, admin, missing


def test_every_route_has_exactly_one_explicit_auth_decision(serve_models: ServeModels) -> None:
    app = make_app(serve_models)
    public, admin, missing = _audit_routes(app)
    assert not missing, "routes without exactly one auth decision:\n" + "\n".join(missing)
    assert len(_route_table(app)) == 17  # health 3, v2 6, v1 2, admin 4, ops 2
    assert public == {"/v2/health/live", "/v2/health/ready", "/openapi.json"}
    assert admin == {"/v2/repository/models/{name}/load", "/v1/models/{name}/canary"}


def test_the_route_walk_catches_routes_without_a_decision(serve_models: ServeModels) -> None:
    app = make_app(serve_models)

    async def raw(_request: Any) -> JSONResponse:
        return JSONResponse({})

    app.add_route("/debug", raw)                                  # a bare Starlette route
    app.add_api_route("/v1/oops", lambda: {}, methods=["GET"])    # an API route nobody decided on
    assert sorted(m.split()[-2] for m in _audit_routes(app)[2]) == ["/debug:", "/v1/oops:"]


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing"),
    ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "missing"),
    ({"Authorization": "Bearer "}, "missing"),
    ({"Authorization": "Bearer not-a-key"}, "invalid"),
])
def test_requests_without_a_valid_key_get_401(client: TestClient, headers: dict, reason: str) -> None:
    response = client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert "not-a-key" not in response.text                    # errors never echo credentials
    v2 = client.get("/v2/models/tiny-iris", headers=headers)
    assert v2.status_code == 401 and v2.json()["code"] == "unauthorized"
    assert f'yard_auth_failures_total{{reason="{reason}"}}' in client.get("/metrics", headers=bearer(ADMIN)).text


@pytest.mark.parametrize(("token", "method", "path", "status"), [
    (READ, "post", "/v1/models/tiny-iris:predict", 403),
    (READ, "get", "/v2/models/tiny-iris", 200),
    (READ, "get", "/metrics", 200),
    (PREDICT, "post", "/v1/models/tiny-iris:predict", 200),
    (PREDICT, "get", "/v2/models/tiny-iris", 200),
    (PREDICT, "get", "/metrics", 403),
    (PREDICT, "post", "/v2/repository/models/tiny-iris/load", 403),
    (READ, "post", "/v2/repository/models/tiny-iris/load", 403),
    (ADMIN, "post", "/v2/repository/models/tiny-iris/load", 200),
    (ADMIN, "post", "/v1/models/tiny-iris:predict", 200),        # admin includes predict and read
    (ADMIN, "get", "/metrics", 200),
])
def test_scopes(client: TestClient, token: str, method: str, path: str, status: int) -> None:
    kwargs = {"json": IRIS_ROW} if path.endswith(":predict") else {}
    response = getattr(client, method)(path, headers=bearer(token), **kwargs)
    assert response.status_code == status, response.text
    if status == 403:
        body = response.json()
        code = body["code"] if path.startswith("/v2") else body["error"]["code"]
        assert code == "forbidden"


def test_verified_keys_are_cached_so_argon2_runs_once_per_key(serve_models: ServeModels) -> None:
    keys = fake_keys()
    with TestClient(make_app(serve_models, keys=keys)) as client:
        codes = [client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code
                 for _ in range(5)]
        assert codes == [200] * 5 and keys.calls == 1
        keys.revoked.add(PREDICT)           # revoked: trusted until the cached verification runs out …
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code == 200
        client.app.state.serve.authenticator.forget()   # … (auth_cache_s, 30 s by default); then refused
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code == 401


def test_revoked_and_expired_keys_fail_at_once_without_the_cache(serve_models: ServeModels) -> None:
    keys = fake_keys()
    keys.add("expired-key-0123456789", "predict", expires_at=1.0)         # expired in 1970
    with TestClient(make_app(serve_models, keys=keys, auth_cache_s=0.0)) as client:
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW,
                           headers=bearer("expired-key-0123456789")).status_code == 401
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code == 200
        keys.revoked.add(PREDICT)
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code == 401


def test_a_cached_key_is_not_trusted_past_its_expiry(serve_models: ServeModels) -> None:
    now = [1_000.0]
    keys = FakeKeys(clock=lambda: now[0])
    keys.add(PREDICT, "predict", expires_at=1_010.0)
    with TestClient(make_app(serve_models, keys=keys)) as client:
        client.app.state.serve.authenticator.clock = lambda: now[0]
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code == 200
        now[0] = 1_011.0                     # 11 s later: well within auth_cache_s (30 s), but past the expiry
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code == 401


def test_rate_limit_per_key_answers_429_with_retry_after(serve_models: ServeModels) -> None:
    with TestClient(make_app(serve_models, rate_limit_per_s=0.5, rate_limit_burst=2)) as client:
        codes = [client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT)).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT))
        assert limited.json()["error"]["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "2"   # one token at 0.5 per second: 2 s
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(ADMIN)).status_code == 200


class FakeAudit:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def append(self, **event: Any) -> None:
        self.events.append(event)


def test_auth_failures_and_admin_actions_go_to_the_audit_chain(serve_models: ServeModels,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    audit = FakeAudit()
    monkeypatch.setattr(serve_models.store, "audit", audit, raising=False)
    with TestClient(make_app(serve_models)) as client:
        client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer("stolen-guess"))
        client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(READ))
        client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(PREDICT))   # not audited
        client.post("/v2/repository/models/tiny-iris/load", headers=bearer(ADMIN))
    actions = [(e["actor"], e["action"], e["target"], e["outcome"]) for e in audit.events]
    assert actions == [("anonymous", "serve.auth_failed", "/v1/models/tiny-iris:predict", "refused"),
                       ("key:key-read-", "serve.forbidden", "/v1/models/tiny-iris:predict", "refused"),
                       ("key:key-admin", "serve.reload", "tiny-iris@staging", "ok")]
    assert audit.events[0]["details"]["reason"] == "invalid"
    assert audit.events[2]["details"]["outcome"] == "unchanged"
    assert "stolen-guess" not in repr(audit.events)


def test_no_auth_only_on_loopback(serve_models: ServeModels, caplog: pytest.LogCaptureFixture) -> None:
    for host in ("0.0.0.0", "192.168.1.4", "example.com"):
        with pytest.raises(ValidationError, match="loopback"):
            ServeConfig(auth=False, host=host)
    for host in ("127.0.0.1", "127.8.0.1", "::1", "localhost"):
        assert ServeConfig(auth=False, host=host).auth is False
    with caplog.at_level(logging.WARNING, logger="modelyard.serve"):
        with TestClient(create_app(serve_config(auth=False), ["tiny-iris@staging"], store=serve_models.store)) as c:
            assert c.post("/v1/models/tiny-iris:predict", json=IRIS_ROW).status_code == 200
            assert c.post("/v2/repository/models/tiny-iris/load").status_code == 200
    assert any("auth is OFF" in r.getMessage() for r in caplog.records)


def test_auth_fails_closed_without_a_key_store() -> None:
    with pytest.raises(StoreError, match="no API keys"):
        StoreKeyVerifier(types.SimpleNamespace(models=None))


def test_real_store_keys_and_audit_chain(serve_models: ServeModels) -> None:
    """The store's own argon2 keys and hash-chained audit log, end to end (no fakes)."""
    store = serve_models.store
    token, info = store.keys.create(["predict"], name="serve-test")
    expired, _ = store.keys.create(["predict"], timedelta(seconds=-1), name="serve-test-expired")
    before = store.audit.count()
    app = create_app(serve_config(auth_cache_s=0.0), ["tiny-iris@staging"], store=store)
    with TestClient(app) as client:
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(token)).status_code == 200
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(expired)).status_code == 401
        assert client.get("/metrics", headers=bearer(token)).status_code == 403
        store.keys.revoke(info.id)
        assert client.post("/v1/models/tiny-iris:predict", json=IRIS_ROW, headers=bearer(token)).status_code == 401
    entries = [e for e in store.audit.entries() if e.seq > before and e.action.startswith("serve.")]
    assert [(e.action, e.actor, e.outcome) for e in entries] == [
        ("serve.auth_failed", "anonymous", "refused"),
        ("serve.forbidden", f"key:{info.id}", "refused"),
        ("serve.auth_failed", "anonymous", "refused"),
    ]
    assert store.audit.verify().ok                     # our appends keep the chain valid


def test_guessing_keys_is_throttled_per_address_before_any_verification(serve_models: ServeModels) -> None:
    keys = fake_keys()
    with TestClient(make_app(serve_models, keys=keys)) as client:
        assert client.get("/v2/models/tiny-iris", headers=bearer(READ)).status_code == 200   # verified and cached
        codes = [client.get("/v2/models/tiny-iris", headers=bearer(f"guess-{i}")).status_code for i in range(22)]
        # A burst of 20 failures per address is verified (and audited); then 429 without touching the key store.
        assert codes == [401] * 20 + [429, 429]
        assert keys.calls == 1 + 20
        assert client.get("/v2/models/tiny-iris", headers=bearer(READ)).status_code == 200   # cached keys go on
        # The price: a key not yet verified waits out the address's penalty too (about a second per failure).
        assert client.get("/v2/models/tiny-iris", headers=bearer(PREDICT)).status_code == 429
