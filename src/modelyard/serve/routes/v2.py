"""Open Inference Protocol v2 (KServe / Triton REST): model metadata, readiness and inference."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from modelyard.runtime import probabilities
from modelyard.serve.auth import requires
from modelyard.serve.deps import ServeState, get_state
from modelyard.serve.errors import PROTOCOL_ERROR_RESPONSES as ERRORS
from modelyard.serve.errors import bad_input
from modelyard.serve.hub import Deployment, ModelEndpoint
from modelyard.serve.inference import check_finite, predict_rows, refuse_if_full
from modelyard.serve.inputs import decode_tensor
from modelyard.serve.protocol import HEADER_LENGTH, infer_response, model_metadata, parse_infer_request
from modelyard.serve.schemas import InferRequest, InferResponse, ModelMetadata, ReadyResponse

router = APIRouter(tags=["v2"])

_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": InferRequest.model_json_schema(
            ref_template="#/components/schemas/{model}")}},
    },
}


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses=ERRORS,
            dependencies=[requires("read", "predict")])
async def metadata(name: str, state: ServeState = Depends(get_state)) -> ModelMetadata:  # noqa: B008
    """Inputs, outputs, versions and runtime of a served model (its primary version)."""
    endpoint = state.hub.get(name)
    return model_metadata(endpoint, endpoint.primary)


@router.get("/v2/models/{name}/versions/{version}", response_model=ModelMetadata, responses=ERRORS,
            dependencies=[requires("read", "predict")])
async def version_metadata(name: str, version: str, state: ServeState = Depends(get_state)) -> ModelMetadata:  # noqa: B008
    """Metadata of one served version (primary or canary)."""
    endpoint = state.hub.get(name)
    return model_metadata(endpoint, endpoint.by_version(version))


@router.get("/v2/models/{name}/ready", response_model=ReadyResponse, responses=ERRORS,
            dependencies=[requires("read", "predict")])
async def model_ready(name: str, state: ServeState = Depends(get_state)) -> ReadyResponse:  # noqa: B008
    """200 when the model is loaded and serving (404 when it is not served here)."""
    state.hub.get(name)
    return ReadyResponse(ready=not state.draining, name=name)


@router.get("/v2/models/{name}/versions/{version}/ready", response_model=ReadyResponse, responses=ERRORS,
            dependencies=[requires("read", "predict")])
async def version_ready(name: str, version: str, state: ServeState = Depends(get_state)) -> ReadyResponse:  # noqa: B008
    """200 when that version is loaded and serving."""
    state.hub.get(name).by_version(version)
    return ReadyResponse(ready=not state.draining, name=name)


@router.post("/v2/models/{name}/infer", response_model=InferResponse, responses=ERRORS,
             openapi_extra=_INFER_BODY, dependencies=[requires("predict")])
async def infer(name: str, request: Request, state: ServeState = Depends(get_state)) -> Response:  # noqa: B008
    """Run the model (the canary takes its share) on typed tensors; JSON or binary tensor data."""
    endpoint = state.hub.get(name)
    return await _infer(state, request, endpoint, endpoint.choose(state.hub.rng))


@router.post("/v2/models/{name}/versions/{version}/infer", response_model=InferResponse,
             responses=ERRORS, openapi_extra=_INFER_BODY, dependencies=[requires("predict")])
async def infer_version(name: str, version: str, request: Request,
                        state: ServeState = Depends(get_state)) -> Response:  # noqa: B008
    """Run one served version (primary or canary) explicitly."""
    endpoint = state.hub.get(name)
    return await _infer(state, request, endpoint, endpoint.by_version(version))


async def _infer(state: ServeState, request: Request, endpoint: ModelEndpoint, deployment: Deployment) -> Response:
    refuse_if_full(state, deployment)
    body = await request.body()
    parsed, tensors = parse_infer_request(body, request.headers.get("content-type"), request.headers.get(HEADER_LENGTH))
    spec = deployment.predictor.spec
    if len(tensors) != 1:
        raise bad_input(f"this model takes one input ({spec.input_name!r}), got {len(tensors)}", "inputs")
    batch = decode_tensor(spec, tensors[0], state.limits)
    rows = await predict_rows(state, request, deployment, batch)
    check_finite(rows, "inputs[0].data")
    outputs: dict[str, tuple[str, Any]]
    if spec.classification:
        probs = probabilities(rows)
        labels = [spec.label_names[k] for k in probs.argmax(axis=1)]
        outputs = {"logits": ("FP32", rows), "probabilities": ("FP32", probs), "label": ("BYTES", labels)}
    else:
        outputs = {"prediction": ("FP32", rows)}
    return infer_response(request=parsed, model=endpoint.name, version=deployment.label, outputs=outputs)
