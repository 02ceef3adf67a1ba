"""The Open Inference Protocol's wire format: metadata, JSON and binary tensors.

A request is either all JSON, or (the *binary tensor data* extension that tritonclient
uses by default for numpy inputs) a JSON header of ``Inference-Header-Content-Length``
bytes followed by the raw tensor bytes, each input naming its size in
``parameters.binary_data_size``. Responses come back the same way when the request asks
for binary outputs (``parameters.binary_data_output`` or ``outputs[i].parameters.binary_data``).

Outputs of a classifier: ``logits`` and ``probabilities`` (FP32, ``[N, classes]``) and
``label`` (BYTES, ``[N]``); of a regressor: ``prediction`` (FP32, ``[N, 1]``).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse, Response

from modelyard.serve.errors import ServeError, shorten
from modelyard.serve.hub import Deployment, ModelEndpoint
from modelyard.serve.inputs import InputSpec, TensorIn
from modelyard.serve.limits import BINARY, JSON, media_type, parse_json, validate_body
from modelyard.serve.schemas import InferRequest, ModelMetadata, TensorMetadata

HEADER_LENGTH = "inference-header-content-length"


def output_metadata(spec: InputSpec) -> list[TensorMetadata]:
    """The outputs a model can return."""
    k = spec.num_outputs
    if spec.classification:
        return [TensorMetadata(name="logits", datatype="FP32", shape=[-1, k]),
                TensorMetadata(name="probabilities", datatype="FP32", shape=[-1, k]),
                TensorMetadata(name="label", datatype="BYTES", shape=[-1])]
    return [TensorMetadata(name="prediction", datatype="FP32", shape=[-1, 1])]


def input_metadata(spec: InputSpec) -> list[TensorMetadata]:
    """The model's one input."""
    if spec.modality == "text":
        return [TensorMetadata(name=spec.input_name, datatype="BYTES", shape=[-1])]
    return [TensorMetadata(name=spec.input_name, datatype="FP32", shape=[-1, *spec.item_shape])]


def model_metadata(endpoint: ModelEndpoint, deployment: Deployment) -> ModelMetadata:
    """``GET /v2/models/{name}[/versions/{v}]``."""
    spec = deployment.predictor.spec
    parameters: dict[str, Any] = {"task": spec.task, "modality": spec.modality, "labels": spec.label_names,
                                  "features": spec.features, "alias": endpoint.selector, "role": deployment.role,
                                  "artifact": deployment.ref.id}
    if endpoint.canary is not None:
        parameters["canary"] = {"version": endpoint.canary.version, "share": endpoint.canary_share}
    if endpoint.last_reload is not None:
        parameters["last_reload"] = endpoint.last_reload.to_dict()
    return ModelMetadata(name=endpoint.name, versions=[d.label for d in endpoint.deployments()],
                         platform=f"modelyard_{deployment.predictor.runtime}", inputs=input_metadata(spec),
                         outputs=output_metadata(spec), parameters=parameters)


def parse_infer_request(body: bytes, content_type: str | None, header_length: str | None
                        ) -> tuple[InferRequest, list[TensorIn]]:
    """Split and validate an inference request (JSON, or JSON header + binary tensors).

    Raises:
        ServeError: 400 for a malformed header length, JSON or binary section; 415 for a
            binary body without its header length.
    """
    binary = b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise ServeError(400, "invalid_request", "Inference-Header-Content-Length is not a number") from None
        if not 0 < length <= len(body):
            raise ServeError(400, "invalid_request", f"Inference-Header-Content-Length {length} does not fit a body "
                             f"of {len(body)} bytes")
        body, binary = body[:length], body[length:]
    elif media_type(content_type) == BINARY:
        raise ServeError(415, "unsupported_media_type", "a binary body needs the Inference-Header-Content-Length "
                         "header; send application/json otherwise")
    elif media_type(content_type) not in ("", JSON):
        raise ServeError(415, "unsupported_media_type", "send application/json")
    request = validate_body(InferRequest, parse_json(body))
    tensors, offset = [], 0
    for i, given in enumerate(request.inputs):
        size = (given.parameters or {}).get("binary_data_size")
        raw = None
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ServeError(400, "invalid_request", f"binary_data_size must be a byte count, got {shorten(size)}",
                                 field=f"inputs[{i}].parameters.binary_data_size")
            if given.data is not None:
                raise ServeError(400, "invalid_request", "an input has either data or binary_data_size, not both",
                                 field=f"inputs[{i}]")
            raw = binary[offset:offset + size]
            if len(raw) != size:
                raise ServeError(400, "invalid_request", f"binary section ends before input {i}'s {size} bytes",
                                 field=f"inputs[{i}].parameters.binary_data_size")
            offset += size
        elif given.data is None:
            raise ServeError(400, "invalid_request", "input has no data", field=f"inputs[{i}].data")
        tensors.append(TensorIn(name=given.name, shape=list(given.shape), datatype=given.datatype,
                                data=given.data, raw=raw))
    if offset != len(binary):
        raise ServeError(400, "invalid_request", f"{len(binary) - offset} binary bytes after the last input")
    return request, tensors


def _tensor_bytes(datatype: str, value: np.ndarray | list[str]) -> bytes:
    if datatype == "BYTES":
        encoded = [str(v).encode("utf-8") for v in value]
        return b"".join(struct.pack("<I", len(b)) + b for b in encoded)
    return np.ascontiguousarray(value, dtype="<f4").tobytes()


def infer_response(*, request: InferRequest, model: str, version: str, outputs: dict[str, tuple[str, Any]]
                   ) -> Response:
    """Encode the requested ``outputs`` (name → (datatype, value)) as JSON or JSON + binary.

    Raises:
        ServeError: 400 when the request names an output the model does not have.
    """
    binary_default = bool((request.parameters or {}).get("binary_data_output", False))
    wanted = request.outputs or []
    names = [o.name for o in wanted] or list(outputs)
    flags = [bool((o.parameters or {}).get("binary_data", binary_default)) for o in wanted] or \
        [binary_default] * len(names)
    tensors, chunks = [], []
    for i, (name, binary) in enumerate(zip(names, flags)):
        if name not in outputs:
            raise ServeError(400, "invalid_request", f"unknown output {shorten(name)} (outputs: {', '.join(outputs)})",
                             field=f"outputs[{i}].name")
        datatype, value = outputs[name]
        shape = [len(value)] if datatype == "BYTES" else list(np.shape(value))
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            raw = _tensor_bytes(datatype, value)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = list(value) if datatype == "BYTES" else np.asarray(value).reshape(-1).tolist()
        tensors.append(tensor)
    header: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request.id is not None:
        header["id"] = request.id
    if not chunks:
        return JSONResponse(header)
    head = json.dumps(header).encode()
    return Response(head + b"".join(chunks), media_type=BINARY,
                    headers={"Inference-Header-Content-Length": str(len(head))})


__all__ = ["HEADER_LENGTH", "infer_response", "input_metadata", "model_metadata", "output_metadata",
           "parse_infer_request"]
