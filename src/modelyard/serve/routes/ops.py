"""Operations: Prometheus metrics and the OpenAPI schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from modelyard.serve.auth import public, requires
from modelyard.serve.deps import ServeState, get_state
from modelyard.serve.errors import ERROR_RESPONSES

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}, **ERROR_RESPONSES},
            dependencies=[requires("read")])
async def metrics(state: ServeState = Depends(get_state)) -> Response:  # noqa: B008
    """Prometheus metrics: requests, latency, batch sizes, queue depth, cache hits, errors, per version."""
    state.metrics.cache_bytes.set(state.cache.bytes)
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/openapi.json", include_in_schema=False,
            dependencies=[public("the API's schema; it names routes and fields, never data or models")])
async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI schema of this server."""
    return JSONResponse(request.app.openapi())
