"""Hot reload when an alias moves (the old version serves on while the new one loads, and on failure) and canaries."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections import Counter

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris

from modelyard.config.serve import CanaryConfig
from modelyard.core.refs import ModelRef
from modelyard.runtime import probabilities
from modelyard.serve import create_app
from tests.serve.conftest import (
    ADMIN,
    PREDICT,
    ServeModels,
    bearer,
    expected_outputs,
    fake_keys,
    register_copy,
    serve_config,
)

IRIS = load_iris().data[[0, 50, 100]].astype(np.float32)


def _name() -> str:
    return f"iris-{uuid.uuid4().hex[:8]}"


def _broken_copy(models: ServeModels, how: str) -> ModelRef:
    """A model artifact that fails to serve: weights that do not fit the spec, or outputs of the wrong width."""
    source = models.store.artifacts.path(models.iris_v1)
    with models.store.artifacts.staging() as folder:
        for file in ("weights.safetensors", "spec.json"):
            shutil.copy(source / file, folder / file)
        spec = json.loads((folder / "spec.json").read_text())
        if how == "weights":
            spec["kwargs"]["hidden"] = [64]                       # the saved layers are 32 wide
        else:
            spec["label_names"] = [*spec["label_names"], "extra"]  # 4 labels, but the model gives 3 outputs
        (folder / "spec.json").write_text(json.dumps(spec))
        ref = models.store.artifacts.publish(folder, kind="model", parents=[models.store.artifacts.parents(
            models.iris_v1.id)[0][0]], relation="trained_from")
    return ModelRef(id=ref.id)


def _probabilities(client: TestClient, path: str) -> tuple[int, np.ndarray]:
    response = client.post(path, json={"instances": IRIS.tolist()}, headers=bearer(PREDICT))
    assert response.status_code == 200, response.text
    body = response.json()
    labels = ("setosa", "versicolor", "virginica")
    return body["version"], np.array([[p["probabilities"][k] for k in labels] for p in body["predictions"]])


def _app(models: ServeModels, uri: str, **overrides: object):  # type: ignore[no-untyped-def]
    canaries = overrides.pop("canaries", None)
    return create_app(serve_config(**overrides), [uri], store=models.store, verifier=fake_keys(),
                      canaries=canaries, seed=0)  # type: ignore[arg-type]


def test_moving_the_alias_swaps_in_the_new_version(serve_models: ServeModels) -> None:
    name = _name()
    register_copy(serve_models, name, [serve_models.iris_v1, serve_models.iris_v2])
    with TestClient(_app(serve_models, f"{name}@prod")) as client:
        version, before = _probabilities(client, f"/v1/models/{name}:predict")
        assert version == 1
        unchanged = client.post(f"/v2/repository/models/{name}/load", headers=bearer(ADMIN)).json()
        assert (unchanged["outcome"], unchanged["serving"]) == ("unchanged", ["1"])
        serve_models.store.models.set_alias(name, "prod", 2)
        swapped = client.post(f"/v2/repository/models/{name}/load", headers=bearer(ADMIN)).json()
        assert (swapped["outcome"], swapped["serving"]) == ("swapped", ["2"])
        version, after = _probabilities(client, f"/v1/models/{name}:predict")
        assert version == 2
        np.testing.assert_allclose(after, probabilities(expected_outputs(serve_models, serve_models.iris_v2, IRIS)),
                                   rtol=1e-5, atol=1e-7)
        assert not np.allclose(before, after)                      # another seed: other weights, other numbers
        assert client.get(f"/v2/models/{name}", headers=bearer(PREDICT)).json()["versions"] == ["2"]
        metrics = client.get("/metrics", headers=bearer(ADMIN)).text
        assert f'yard_model_reloads_total{{model="{name}",outcome="swapped"}} 1.0' in metrics
        assert f'yard_model_loaded{{model="{name}",role="primary",version="2"}} 1.0' in metrics
        assert f'yard_model_loaded{{model="{name}",role="primary",version="1"}}' not in metrics


def test_the_watcher_follows_the_alias_on_its_own(serve_models: ServeModels) -> None:
    name = _name()
    register_copy(serve_models, name, [serve_models.iris_v1, serve_models.iris_v2])
    with TestClient(_app(serve_models, f"{name}@prod", reload_poll_s=0.05)) as client:
        serve_models.store.models.set_alias(name, "prod", 2)
        deadline = time.monotonic() + 30
        while client.get(f"/v2/models/{name}", headers=bearer(PREDICT)).json()["versions"] != ["2"]:
            assert time.monotonic() < deadline, "the alias watcher never swapped"
            time.sleep(0.05)
        assert _probabilities(client, f"/v1/models/{name}:predict")[0] == 2


@pytest.mark.parametrize(("how", "needle"), [("weights", "cannot load weights"), ("outputs", "smoke prediction")])
def test_a_version_that_fails_to_load_leaves_the_old_one_serving(serve_models: ServeModels, how: str,
                                                                 needle: str) -> None:
    name = _name()
    register_copy(serve_models, name, [serve_models.iris_v1, _broken_copy(serve_models, how)])
    with TestClient(_app(serve_models, f"{name}@prod")) as client:
        serve_models.store.models.set_alias(name, "prod", 2)
        failed = client.post(f"/v2/repository/models/{name}/load", headers=bearer(ADMIN)).json()
        assert (failed["outcome"], failed["serving"]) == ("failed", ["1"])
        assert needle in failed["detail"]["error"]
        assert _probabilities(client, f"/v1/models/{name}:predict")[0] == 1
        meta = client.get(f"/v2/models/{name}", headers=bearer(PREDICT)).json()
        assert meta["versions"] == ["1"] and meta["parameters"]["last_reload"]["outcome"] == "failed"
        assert client.get("/v2/health/ready").status_code == 200
        assert f'yard_model_reloads_total{{model="{name}",outcome="failed"}} 1.0' in \
            client.get("/metrics", headers=bearer(ADMIN)).text


def test_a_pinned_version_is_not_followed(serve_models: ServeModels) -> None:
    name = _name()
    register_copy(serve_models, name, [serve_models.iris_v1, serve_models.iris_v2])
    with TestClient(_app(serve_models, f"{name}@v1")) as client:
        serve_models.store.models.set_alias(name, "prod", 2)
        assert client.post(f"/v2/repository/models/{name}/load", headers=bearer(ADMIN)).json()["outcome"] == \
            "unchanged"


def test_the_canary_takes_its_share_with_metrics_per_version(serve_models: ServeModels) -> None:
    name = _name()
    register_copy(serve_models, name, [serve_models.iris_v1, serve_models.iris_v2])
    app = _app(serve_models, f"{name}@prod", canaries={name: CanaryConfig(version=2, share=0.25)},
               cache_max_bytes=0)
    with TestClient(app) as client:
        versions = Counter(_probabilities(client, f"/v1/models/{name}:predict")[0] for _ in range(200))
        # Binomial(200, 0.25): mean 50, sd 6.1; the draws are seeded (seed=0), bounds are ±4 sd.
        assert set(versions) == {1, 2} and 26 <= versions[2] <= 74, versions
        metrics = client.get("/metrics", headers=bearer(ADMIN)).text
        for version, count in versions.items():   # 3 inputs per request
            assert f'yard_predictions_total{{model="{name}",outcome="ok",version="{version}"}} {3.0 * count}' \
                in metrics
        assert f'yard_model_loaded{{model="{name}",role="canary",version="2"}} 1.0' in metrics
        # Each version can be called explicitly, and the metadata names the canary.
        assert _probabilities(client, f"/v1/models/{name}/versions/2:predict")[0] == 2
        assert client.get(f"/v2/models/{name}", headers=bearer(PREDICT)).json()["parameters"]["canary"] == \
            {"version": 2, "share": 0.25}


def test_admins_set_and_remove_the_canary(serve_models: ServeModels) -> None:
    name = _name()
    register_copy(serve_models, name, [serve_models.iris_v1, serve_models.iris_v2,
                                       _broken_copy(serve_models, "weights")])
    admin = bearer(ADMIN)
    with TestClient(_app(serve_models, f"{name}@prod")) as client:
        put = client.put(f"/v1/models/{name}/canary", json={"version": 2, "share": 0.1}, headers=admin)
        assert put.status_code == 200 and put.json()["serving"] == ["1", "2"]
        assert client.put(f"/v1/models/{name}/canary", json={"version": 9, "share": 0.1},
                          headers=admin).status_code == 404
        assert client.put(f"/v1/models/{name}/canary", json={"version": 1, "share": 0.1},
                          headers=admin).status_code == 400
        broken = client.put(f"/v1/models/{name}/canary", json={"version": 3, "share": 0.1}, headers=admin)
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "canary_failed"
        assert client.put(f"/v1/models/{name}/canary", json={"version": 2, "share": 1.5},
                          headers=admin).status_code == 400
        assert client.put(f"/v1/models/{name}/canary", json={"version": 2, "share": 0.1},
                          headers=bearer(PREDICT)).status_code == 403
        assert client.get(f"/v2/models/{name}", headers=admin).json()["versions"] == ["1", "2"]  # still v2
        removed = client.delete(f"/v1/models/{name}/canary", headers=admin)
        assert removed.json()["serving"] == ["1"]
        assert client.post(f"/v1/models/{name}/versions/2:predict", json={"instances": IRIS.tolist()},
                           headers=bearer(PREDICT)).status_code == 404
