"""The plain JSON API: raw inputs in, labels and probabilities (and attributions) out."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from modelyard.runtime import probabilities
from modelyard.serve.auth import requires
from modelyard.serve.deps import ServeState, get_state
from modelyard.serve.errors import ERROR_RESPONSES
from modelyard.serve.hub import Deployment, ModelEndpoint
from modelyard.serve.inference import check_finite, explain_rows, predict_rows, refuse_if_full
from modelyard.serve.inputs import InputSpec, decode_instances
from modelyard.serve.limits import read_json, validate_body
from modelyard.serve.schemas import PredictRequest, PredictResponse

router = APIRouter(tags=["v1"])

_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema(
            ref_template="#/components/schemas/{model}")}},
    },
}


@router.post("/v1/models/{name}:predict", response_model=PredictResponse, responses=ERROR_RESPONSES,
             openapi_extra=_PREDICT_BODY, dependencies=[requires("predict")])
async def predict(name: str, request: Request, state: ServeState = Depends(get_state)) -> JSONResponse:  # noqa: B008
    """Predict on raw inputs (feature objects, image arrays or base64, text); the canary takes its share."""
    endpoint = state.hub.get(name)
    return await _predict(state, request, endpoint, endpoint.choose(state.hub.rng))


@router.post("/v1/models/{name}/versions/{version}:predict", response_model=PredictResponse,
             responses=ERROR_RESPONSES, openapi_extra=_PREDICT_BODY, dependencies=[requires("predict")])
async def predict_version(name: str, version: str, request: Request,
                          state: ServeState = Depends(get_state)) -> JSONResponse:  # noqa: B008
    """Predict with one served version (primary or canary) explicitly."""
    endpoint = state.hub.get(name)
    return await _predict(state, request, endpoint, endpoint.by_version(version))


async def _predict(state: ServeState, request: Request, endpoint: ModelEndpoint,
                   deployment: Deployment) -> JSONResponse:
    refuse_if_full(state, deployment)
    body = validate_body(PredictRequest, await read_json(request))
    spec = deployment.predictor.spec
    batch = decode_instances(spec, body.instances, state.limits)
    rows = await predict_rows(state, request, deployment, batch)
    check_finite(rows, "instances")
    predictions: list[dict[str, Any]]
    if spec.classification:
        probs = probabilities(rows)
        best = probs.argmax(axis=1)
        names = spec.label_names
        predictions = [{"label": names[k], "probabilities": dict(zip(names, p.tolist()))}
                       for k, p in zip(best, probs)]
    else:
        best = np.zeros(len(rows), dtype=np.int64)
        predictions = [{"value": float(r[0])} for r in rows]
    if body.explain:
        attributions = await explain_rows(state, deployment, batch, best)
        check_finite(attributions.reshape(len(attributions), -1), "instances")
        for prediction, attribution in zip(predictions, attributions):
            prediction["attributions"] = _attribution(spec, attribution)
    return JSONResponse({"model": endpoint.name, "version": deployment.version, "predictions": predictions})


def _attribution(spec: InputSpec, values: np.ndarray) -> Any:
    if spec.modality == "tabular":
        return dict(zip(spec.features, values.astype(float).tolist()))
    return values.astype(float).tolist()
