"""The runtimes behind the one predictor interface: torch int8, ONNX Runtime, and text models (tokenizer).

Variants are made here the way a compression step would: the same ``spec.json`` with
``"runtime": "torch-int8"``, or ``model.onnx`` exported from the fp32 module; a text model
is a tiny LSTM with a character tokenizer saved by ``runtime.save_model``.
"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris

from modelyard.core.refs import ModelRef
from modelyard.plugins import MODELS, load_builtins
from modelyard.plugins.tokenizers.char import CharTokenizer
from modelyard.runtime import load_model, probabilities, save_model
from modelyard.serve import create_app
from modelyard.serve.predictor import runtime_name
from tests.serve.conftest import PREDICT, ServeModels, bearer, expected_outputs, fake_keys, serve_config

IRIS = load_iris().data[[0, 50, 100, 120]].astype(np.float32)
LABELS = ("setosa", "versicolor", "virginica")
AUTH = bearer(PREDICT)


def _publish(models: ServeModels, fill: object, parent_of: ModelRef | None = None) -> ModelRef:
    with models.store.artifacts.staging() as folder:
        fill(folder)  # type: ignore[operator]
        parents, relation = [], None
        if parent_of is not None:   # the dataset, so the server finds the tabular preprocessing
            parents = [models.store.artifacts.parents(parent_of.id)[0][0]]
            relation = "trained_from"
        ref = models.store.artifacts.publish(folder, kind="model", parents=parents, relation=relation)
    return ModelRef(id=ref.id)


def _register(models: ServeModels, ref: ModelRef) -> str:
    name = f"variant-{uuid.uuid4().hex[:8]}"
    models.store.models.register(name, ref, alias="prod")
    return name


def _probabilities(client: TestClient, name: str, explain: bool = False) -> tuple[dict, np.ndarray]:
    response = client.post(f"/v1/models/{name}:predict", json={"instances": IRIS.tolist(), "explain": explain},
                           headers=AUTH)
    body = response.json()
    if response.status_code != 200:
        return body, np.zeros(0)
    return body, np.array([[p["probabilities"][k] for k in LABELS] for p in body["predictions"]])


def _app(models: ServeModels, *uris: str):  # type: ignore[no-untyped-def]
    return create_app(serve_config(cache_max_bytes=0), list(uris), store=models.store, verifier=fake_keys())


def test_torch_int8_variant_serves_close_to_fp32_and_refuses_explanations(serve_models: ServeModels) -> None:
    source = serve_models.store.artifacts.path(serve_models.iris_v1)

    def fill(folder: Path) -> None:
        shutil.copy(source / "weights.safetensors", folder / "weights.safetensors")
        spec = json.loads((source / "spec.json").read_text())
        (folder / "spec.json").write_text(json.dumps({**spec, "runtime": "torch-int8"}))

    name = _register(serve_models, _publish(serve_models, fill, parent_of=serve_models.iris_v1))
    _assert_serves_int8(serve_models, name)


def _assert_serves_int8(serve_models: ServeModels, name: str) -> None:
    """``name@prod`` is served as torch-int8: close to the fp32 iris model, not equal, no explanations."""
    with TestClient(_app(serve_models, f"{name}@prod")) as client:
        assert client.get(f"/v2/models/{name}", headers=AUTH).json()["platform"] == "modelyard_torch-int8"
        _body, got = _probabilities(client, name)
        want = probabilities(expected_outputs(serve_models, serve_models.iris_v1, IRIS))
        # Dynamic int8 rounds weights and activations to 8 bits: close to fp32, not equal.
        np.testing.assert_allclose(got, want, atol=0.05)
        assert not np.array_equal(got, want)
        assert (got.argmax(1) == want.argmax(1)).all()
        refused, _ = _probabilities(client, name, explain=True)
        assert refused["error"]["code"] == "explain_unsupported" and refused["error"]["field"] == "explain"


def test_a_compressed_int8_variant_is_labelled_int8_and_serves_as_saved(serve_models: ServeModels) -> None:
    from modelyard.compress.quantize import dynamic_variant
    from modelyard.config.compress import Int8DynamicVariant
    from modelyard.runtime.quantized import save_quantized

    fp32 = load_model(serve_models.store, serve_models.iris_v1)
    quantized, spec = dynamic_variant(fp32.module, fp32.spec, Int8DynamicVariant(method="int8-dynamic"))
    assert "runtime" not in spec  # what `yard compress` writes: a format, no runtime name
    # Loaded as saved: re-quantizing would find no nn.Linear left and refuse the artifact.
    name = _register(serve_models, _publish(serve_models, lambda folder: save_quantized(folder, quantized, spec),
                                            parent_of=serve_models.iris_v1))
    _assert_serves_int8(serve_models, name)


def test_onnx_variant_matches_the_torch_module(serve_models: ServeModels) -> None:
    source = serve_models.store.artifacts.path(serve_models.iris_v1)
    module = load_model(serve_models.store, serve_models.iris_v1).module

    def fill(folder: Path) -> None:
        shutil.copy(source / "spec.json", folder / "spec.json")
        with warnings.catch_warnings():     # the TorchScript exporter warns that it is the legacy one
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, (torch.zeros(2, 4),), str(folder / "model.onnx"), input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)

    ref = _publish(serve_models, fill, parent_of=serve_models.iris_v1)
    assert runtime_name({}, {"model.onnx", "spec.json"}) == "onnxruntime"
    name = _register(serve_models, ref)
    with TestClient(_app(serve_models, f"{name}@prod")) as client:
        assert client.get(f"/v2/models/{name}", headers=AUTH).json()["platform"] == "modelyard_onnxruntime"
        _body, got = _probabilities(client, name)
        want = probabilities(expected_outputs(serve_models, serve_models.iris_v1, IRIS))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        refused, _ = _probabilities(client, name, explain=True)
        assert refused["error"]["code"] == "explain_unsupported"


def test_a_broken_onnx_file_is_refused_at_load(serve_models: ServeModels) -> None:
    source = serve_models.store.artifacts.path(serve_models.iris_v1)

    def fill(folder: Path) -> None:
        shutil.copy(source / "spec.json", folder / "spec.json")
        (folder / "model.onnx").write_bytes(b"not a protobuf at all")

    name = _register(serve_models, _publish(serve_models, fill))
    with pytest.raises(Exception, match="ONNX Runtime cannot load the model"):
        with TestClient(_app(serve_models, f"{name}@prod")):
            pass


TEXTS = ["good great fine", "bad awful poor", "great good", "poor bad"]


def test_text_models_tokenize_strings_like_training(serve_models: ServeModels) -> None:
    load_builtins()
    torch.manual_seed(0)
    tokenizer = CharTokenizer().fit(TEXTS)
    kwargs = {"vocab_size": tokenizer.vocab_size, "max_length": 24, "num_outputs": 2, "embed_dim": 8, "hidden": 8,
              "dropout": 0.0}
    module = MODELS.get("lstm")(**kwargs).eval()
    spec = {"plugin": "lstm", "kwargs": kwargs, "task": "classification", "modality": "text",
            "label_names": ["neg", "pos"], "inputs": {"features": [], "image_shape": None, "text": "text"},
            "tokenizer": {"kind": tokenizer.kind, "max_length": 24, "folder": "tokenizer"}}
    name = _register(serve_models, _publish(serve_models, lambda folder: save_model(folder, module, spec,
                                                                                    tokenizer=tokenizer)))
    ids, mask = tokenizer.encode_batch(TEXTS, 24)
    with torch.no_grad():
        want = module(torch.as_tensor(ids), torch.as_tensor(mask)).numpy()
    with TestClient(_app(serve_models, f"{name}@prod")) as client:
        response = client.post(f"/v1/models/{name}:predict", json={"instances": TEXTS}, headers=AUTH)
        assert response.status_code == 200, response.text
        got = np.array([[p["probabilities"][k] for k in ("neg", "pos")] for p in response.json()["predictions"]])
        np.testing.assert_allclose(got, probabilities(want), rtol=1e-5, atol=1e-6)
        # The same texts as an Open Inference Protocol BYTES tensor.
        infer = client.post(f"/v2/models/{name}/infer", headers=AUTH, json={
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [4], "data": TEXTS}],
            "outputs": [{"name": "logits"}]})
        assert infer.status_code == 200, infer.text
        np.testing.assert_allclose(np.array(infer.json()["outputs"][0]["data"]).reshape(4, 2), want,
                                   rtol=1e-5, atol=1e-6)
        wrong = client.post(f"/v1/models/{name}:predict", json={"instances": [3]}, headers=AUTH)
        assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "instances[0]"
        explain = client.post(f"/v1/models/{name}:predict", json={"instances": TEXTS[:1], "explain": True},
                              headers=AUTH)
        assert explain.status_code == 400 and explain.json()["error"]["code"] == "explain_unsupported"


def test_int8_linear_is_close_to_the_fp32_layer_and_stores_int8() -> None:
    from modelyard.serve.int8 import Int8Linear, quantize_linear_layers

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    x = torch.randn(8, 16)
    with torch.no_grad():
        want = model(x)
        assert quantize_linear_layers(model) == 2
        got = model(x)
    assert isinstance(model[0], Int8Linear) and model[0].weight_t.dtype == torch.int8
    # 8-bit weights and activations: relative error around 1%, far from the outputs' own scale.
    assert float((got - want).abs().max()) < 0.05 * float(want.abs().max())
    assert not list(model.parameters())                   # nothing left in fp32 to train or to leak
