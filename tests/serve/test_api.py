"""The HTTP API through TestClient: both protocols give the runtime's numbers; every error has the JSON shape."""

from __future__ import annotations

import base64
import io
import json
import struct

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.datasets import load_digits, load_iris

from modelyard.core.refs import DatasetRef
from modelyard.data import open_dataset
from modelyard.runtime import load_model, probabilities
from tests.serve.conftest import ADMIN, IRIS_FEATURES, PREDICT, ServeModels, bearer, expected_outputs

AUTH = bearer(PREDICT)
IRIS = load_iris().data[[0, 50, 100]].astype(np.float32)   # one flower of each class, rows 0 / 50 / 100


def _expected(models: ServeModels, ref, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return expected_outputs(models, ref, x)


def test_v1_predict_gives_the_runtimes_probabilities(client: TestClient, serve_models: ServeModels) -> None:
    instances = [dict(zip(IRIS_FEATURES, IRIS[0].tolist())), IRIS[1].tolist(), IRIS[2].tolist()]
    response = client.post("/v1/models/tiny-iris:predict", json={"instances": instances}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("tiny-iris", 1)
    expected = probabilities(_expected(serve_models, serve_models.iris_v1, IRIS))
    got = np.array([[p["probabilities"][n] for n in ("setosa", "versicolor", "virginica")]
                    for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert [p["label"] for p in body["predictions"]] == [["setosa", "versicolor", "virginica"][k]
                                                         for k in expected.argmax(axis=1)]
    # Iris rows 0 / 50 / 100 are one flower of each class, far from the class borders.
    assert [p["label"] for p in body["predictions"]] == ["setosa", "versicolor", "virginica"]


def test_v2_infer_json_and_binary_agree_with_the_runtime(client: TestClient, serve_models: ServeModels) -> None:
    logits = _expected(serve_models, serve_models.iris_v1, IRIS)
    as_json = client.post("/v2/models/tiny-iris/infer", headers=AUTH, json={
        "id": "r1", "inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": IRIS.tolist()}]})
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    assert (body["id"], body["model_name"], body["model_version"]) == ("r1", "tiny-iris", "1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["logits"]["shape"] == [3, 3] and outputs["label"]["datatype"] == "BYTES"
    np.testing.assert_allclose(np.array(outputs["logits"]["data"]).reshape(3, 3), logits, rtol=1e-5, atol=1e-6)

    # The binary tensor extension, as tritonclient sends it: JSON header, then raw little-endian bytes.
    header = json.dumps({"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": IRIS.nbytes}}],
                         "outputs": [{"name": "logits", "parameters": {"binary_data": True}},
                                     {"name": "label", "parameters": {"binary_data": True}}]}).encode()
    response = client.post("/v2/models/tiny-iris/infer", content=header + IRIS.astype("<f4").tobytes(),
                           headers={**AUTH, "Inference-Header-Content-Length": str(len(header)),
                                    "Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    size = int(response.headers["inference-header-content-length"])
    meta = json.loads(response.content[:size])
    blob = response.content[size:]
    n_logits = meta["outputs"][0]["parameters"]["binary_data_size"]
    assert n_logits == 3 * 3 * 4
    np.testing.assert_allclose(np.frombuffer(blob[:n_logits], "<f4").reshape(3, 3), logits, rtol=1e-5, atol=1e-6)
    labels, rest = [], blob[n_logits:]
    while rest:
        (length,) = struct.unpack_from("<I", rest)
        labels.append(rest[4:4 + length].decode())
        rest = rest[4 + length:]
    assert labels == outputs["label"]["data"]


def test_image_model_takes_arrays_and_base64(client: TestClient, serve_models: ServeModels) -> None:
    digits = load_digits()
    # Quantise to 8-bit grey so the PNG round trip is exact: value = round(pixel / 16 * 255) / 255.
    pixels = np.round(digits.images[:2] / 16.0 * 255).astype(np.uint8)
    floats = (pixels / 255.0).astype(np.float32)
    pngs = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        pngs.append(base64.b64encode(buffer.getvalue()).decode())
    response = client.post("/v1/models/tiny-digits:predict", headers=AUTH,
                           json={"instances": [floats[0].tolist(), {"b64": pngs[1]}]})
    assert response.status_code == 200, response.text
    expected = probabilities(_expected(serve_models, serve_models.digits, floats[:, None]))
    got = np.array([[p["probabilities"][str(k)] for k in range(10)] for p in response.json()["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_explain_returns_gradient_times_input(client: TestClient, serve_models: ServeModels) -> None:
    response = client.post("/v1/models/tiny-iris:predict", headers=AUTH,
                           json={"instances": [IRIS[2].tolist()], "explain": True})
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    module = load_model(serve_models.store, serve_models.iris_v1).module
    (parent, _relation), = serve_models.store.artifacts.parents(serve_models.iris_v1.id)
    dataset = open_dataset(serve_models.store, DatasetRef(id=parent))
    scaled = dataset.preprocessor.transform(pd.DataFrame(IRIS[2:3], columns=IRIS_FEATURES))
    x = torch.tensor(scaled, requires_grad=True)          # attributions are over the model's (scaled) inputs
    out = module(x)
    target = int(out.argmax())
    out[0, target].backward()
    expected = (x.grad * x).detach().numpy()[0]            # attribution_i = x_i * d logit_target / d x_i
    got = np.array([prediction["attributions"][f] for f in IRIS_FEATURES])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_repeated_inputs_are_answered_from_the_cache(client: TestClient) -> None:
    payload = {"instances": [IRIS[0].tolist(), IRIS[1].tolist()]}
    first = client.post("/v1/models/tiny-iris:predict", json=payload, headers=AUTH).json()
    second = client.post("/v1/models/tiny-iris:predict", headers=AUTH,
                         json={"instances": [IRIS[1].tolist(), IRIS[2].tolist()]}).json()
    assert second["predictions"][0] == first["predictions"][1]
    metrics = client.get("/metrics", headers=bearer(ADMIN)).text
    assert 'yard_cache_hits_total{model="tiny-iris",version="1"} 1.0' in metrics      # IRIS[1] the second time
    assert 'yard_cache_misses_total{model="tiny-iris",version="1"} 3.0' in metrics    # 0, 1, then 2
    hub = client.app.state.serve.hub
    assert hub.get("tiny-iris").primary.batcher.stats.inputs == 3                     # only misses reach the model


def test_metadata_and_readiness(client: TestClient) -> None:
    meta = client.get("/v2/models/tiny-digits", headers=bearer(PREDICT)).json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in meta["outputs"]] == ["logits", "probabilities", "label"]
    assert meta["versions"] == ["1"] and meta["platform"] == "modelyard_torch-fp32"
    assert meta["parameters"]["labels"] == [str(k) for k in range(10)]
    assert client.get("/v2/models/tiny-iris/versions/v1", headers=AUTH).json()["name"] == "tiny-iris"
    assert client.get("/v2/models/tiny-iris/ready", headers=AUTH).json() == {"ready": True, "name": "tiny-iris"}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json()["ready"] is True
    assert client.get("/v2", headers=AUTH).json()["extensions"] == ["binary_tensor_data", "model_repository"]
    index = client.post("/v2/repository/index", headers=bearer(ADMIN)).json()
    assert {(e["name"], e["version"]) for e in index} == {("tiny-iris", "1"), ("tiny-digits", "1")}


LONG = ["x" * 70_000]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code", "field"), [
    ("post", "/v1/models/tiny-iris:predict", {"content": b""}, 400, "invalid_json", None),
    ("post", "/v1/models/tiny-iris:predict", {"content": b"{\"instances\": [1,"}, 400, "invalid_json", None),
    ("post", "/v1/models/tiny-iris:predict", {"content": b"[" * 100_000}, 400, "invalid_json", None),
    ("post", "/v1/models/tiny-iris:predict", {"content": b"\xff\xfe{}"}, 400, "invalid_json", None),
    ("post", "/v1/models/tiny-iris:predict", {"json": {"instances": [[1, 2, 3, 4]], "extra": 1}}, 400,
     "invalid_request", "extra"),
    ("post", "/v1/models/tiny-iris:predict", {"json": {"instances": [[1, 2, 3, 4]], "explain": "yes"}}, 400,
     "invalid_request", "explain"),
    ("post", "/v1/models/tiny-iris:predict", {"json": {"instances": [[0.0] * 4] * 10_000}}, 400, "invalid_input",
     "instances"),
    ("post", "/v1/models/tiny-iris:predict", {"content": b'{"instances": [[NaN, 1, 2, 3]]}'}, 400, "invalid_input",
     "instances[0].sepal length (cm)"),
    ("post", "/v1/models/tiny-iris:predict", {"json": {"instances": [{"sepal length (cm)\u0000": 1}]}}, 400,
     "invalid_input", "instances[0].sepal length (cm)\u0000"),
    ("post", "/v1/models/tiny-iris:predict", {"json": {"instances": [[[[[[1]]]]]]}}, 400, "invalid_input",
     "instances[0]"),
    ("post", "/v1/models/tiny-digits:predict", {"json": {"instances": LONG}}, 400, "invalid_input", "instances[0]"),
    ("post", "/v1/models/tiny-iris:predict", {"content": b"a=1", "headers": {"Content-Type": "text/plain"}}, 415,
     "unsupported_media_type", None),
    ("post", "/v1/models/tiny-iris:predict", {"content": b"{}", "headers": {"Content-Type": "application/xml"}}, 415,
     "unsupported_media_type", None),
    ("post", "/v1/models/tiny-iris:predict", {"content": b"x" * (4 << 20 | 1)}, 413, "payload_too_large", None),
    ("post", "/v1/models/nope:predict", {"json": {"instances": [[1, 2, 3, 4]]}}, 404, "not_found", "name"),
    ("post", "/v1/models/tiny-iris/versions/7:predict", {"json": {"instances": [[1, 2, 3, 4]]}}, 404, "not_found",
     "version"),
    ("get", "/v1/models/tiny-iris:predict", {}, 405, "method_not_allowed", None),
    ("get", "/no/such/route", {}, 404, "not_found", None),
    ("get", "/docs", {}, 404, "not_found", None),
])
def test_errors_have_the_json_shape(client: TestClient, method: str, path: str, kwargs: dict, status: int,
                                    code: str, field: str | None) -> None:
    headers = {"Content-Type": "application/json", **AUTH, **kwargs.pop("headers", {})}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert isinstance(error["message"], str) and error["message"]


@pytest.mark.parametrize(("body", "headers", "status", "code", "field"), [
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]}, {}, 400,
     "invalid_input", "inputs[0].data"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
      "outputs": [{"name": "nope"}]}, {}, 400, "invalid_request", "outputs[0].name"),
    ({"inputs": []}, {}, 400, "invalid_request", "inputs"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32"}]}, {}, 400, "invalid_request",
     "inputs[0].data"),
    (b'{"inputs": []}', {"Content-Type": "application/octet-stream"}, 415, "unsupported_media_type", None),
    (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, 400, "invalid_request", None),
])
def test_v2_errors_use_the_protocols_string_form(client: TestClient, body: object, headers: dict, status: int,
                                                 code: str, field: str | None) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = client.post("/v2/models/tiny-iris/infer", headers={**AUTH, **headers}, **kwargs)
    assert response.status_code == status, response.text
    payload = response.json()
    assert isinstance(payload["error"], str) and (payload["code"], payload["field"]) == (code, field), payload


def test_chunked_bodies_over_the_limit_are_cut_off(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b" " * (1 << 20)                     # 5 MiB in total, with no Content-Length

    response = client.post("/v1/models/tiny-iris:predict", content=chunks(), headers=AUTH)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_metrics_cover_requests_latency_batches_queue_and_errors(client: TestClient) -> None:
    for _ in range(2):
        client.post("/v1/models/tiny-iris:predict", json={"instances": [IRIS[0].tolist()]}, headers=AUTH)
    client.post("/v1/models/tiny-iris:predict", json={"instances": "x"}, headers=AUTH)
    text = client.get("/metrics", headers=bearer(ADMIN)).text
    for needle in (
        'yard_http_requests_total{code="200",method="POST",route="/v1/models/{name}:predict"} 2.0',
        'yard_http_requests_total{code="400",method="POST",route="/v1/models/{name}:predict"} 1.0',
        'yard_http_errors_total{code="400",error="invalid_request"} 1.0',
        'yard_batch_size_count{model="tiny-iris",version="1"} 1.0',       # the second request hit the cache
        'yard_queue_depth{model="tiny-iris",version="1"} 0.0',
        'yard_predictions_total{model="tiny-iris",outcome="ok",version="1"} 2.0',
        'yard_model_loaded{model="tiny-digits",role="primary",version="1"} 1.0',
        'yard_http_request_duration_seconds_count{route="/v1/models/{name}:predict"} 3.0',
        'yard_inference_request_duration_seconds_count{model="tiny-iris",version="1"} 2.0',
    ):
        assert needle in text, needle


def test_openapi_is_public_and_describes_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/v2/models/{name}/infer" in schema["paths"] and "/v1/models/{name}:predict" in schema["paths"]
    infer = schema["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"]["title"] == "InferRequest"
    assert infer["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/v2/health/live"]["get"]
