"""Liveness, readiness and server metadata (Open Inference Protocol ``/v2/health/*``, ``/v2``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from modelyard import __version__
from modelyard.serve.auth import public, requires
from modelyard.serve.deps import ServeState, get_state
from modelyard.serve.errors import PROTOCOL_ERROR_RESPONSES, error_response
from modelyard.serve.schemas import LiveResponse, ReadyResponse, ServerMetadata

router = APIRouter(tags=["health"])

# What `GET /v2` advertises: binary tensors in and out, as tritonclient sends them by default.
EXTENSIONS = ["binary_tensor_data", "model_repository"]


@router.get("/v2/health/live", response_model=LiveResponse, responses=PROTOCOL_ERROR_RESPONSES,
            dependencies=[public("load balancers and orchestrators probe it; it reveals nothing")])
async def live() -> LiveResponse:
    """The process is up and answering."""
    return LiveResponse(live=True)


@router.get("/v2/health/ready", response_model=ReadyResponse, responses=PROTOCOL_ERROR_RESPONSES,
            dependencies=[public("load balancers route by it; it reveals only ready or not")])
async def ready(state: ServeState = Depends(get_state)) -> ReadyResponse | JSONResponse:  # noqa: B008
    """Every model is loaded and requests are taken (503 while shutting down)."""
    if state.draining or not state.hub.endpoints:
        return error_response(503, "unavailable", "not ready (starting or shutting down)", protocol=True)
    return ReadyResponse(ready=True)


@router.get("/v2", response_model=ServerMetadata, responses=PROTOCOL_ERROR_RESPONSES,
            dependencies=[requires("read", "predict")])
async def server_metadata() -> ServerMetadata:
    """Server name, version and protocol extensions."""
    return ServerMetadata(name="modelyard", version=__version__, extensions=EXTENSIONS)
