"""Admin actions (reload now, canary on/off) and the model repository index; admin actions are audited."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from modelyard.config.serve import CanaryConfig
from modelyard.serve.auth import Principal, requires
from modelyard.serve.deps import ServeState, get_state
from modelyard.serve.errors import ERROR_RESPONSES, PROTOCOL_ERROR_RESPONSES
from modelyard.serve.hub import ModelEndpoint
from modelyard.serve.limits import read_json, validate_body
from modelyard.serve.reload import reload_endpoint, set_canary
from modelyard.serve.schemas import AdminResponse, CanaryRequest, RepositoryEntry

router = APIRouter(tags=["admin"])
# Admin routes take the principal as a parameter (for the audit record), so the decision is a shared default.
_ADMIN = requires("admin")

_CANARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CanaryRequest.model_json_schema(
            ref_template="#/components/schemas/{model}")}},
    },
}


def _serving(endpoint: ModelEndpoint) -> list[str]:
    return [d.label for d in endpoint.deployments()]


@router.post("/v2/repository/index", response_model=list[RepositoryEntry], responses=PROTOCOL_ERROR_RESPONSES,
             dependencies=[requires("read")])
async def index(state: ServeState = Depends(get_state)) -> list[RepositoryEntry]:  # noqa: B008
    """Every served model with its primary version."""
    return [RepositoryEntry(name=e.name, version=e.primary.label, state="READY",
                            reason=(e.last_reload.error or "") if e.last_reload else "")
            for e in state.hub.endpoints.values()]


@router.post("/v2/repository/models/{name}/load", response_model=AdminResponse,
             responses=PROTOCOL_ERROR_RESPONSES)
async def load(name: str, request: Request, state: ServeState = Depends(get_state),  # noqa: B008
               principal: Principal = _ADMIN) -> AdminResponse:
    """Check the model's alias now and hot-swap to the version it points at (old one serves on failure)."""
    endpoint = state.hub.get(name)
    outcome = await reload_endpoint(state.hub, endpoint)
    await state.audit.append(actor=principal.actor, action="serve.reload", target=endpoint.uri,
                             outcome="failed" if outcome.outcome == "failed" else "ok",
                             details={**outcome.to_dict(), "client": request.client.host if request.client else None})
    return AdminResponse(model=name, outcome=outcome.outcome, serving=_serving(endpoint), detail=outcome.to_dict())


@router.put("/v1/models/{name}/canary", response_model=AdminResponse, responses=ERROR_RESPONSES,
            openapi_extra=_CANARY_BODY)
async def put_canary(name: str, request: Request, state: ServeState = Depends(get_state),  # noqa: B008
                     principal: Principal = _ADMIN) -> AdminResponse:
    """Route a share of the model's traffic to another version (loaded and smoke-tested first)."""
    endpoint = state.hub.get(name)
    body = validate_body(CanaryRequest, await read_json(request))
    await set_canary(state.hub, endpoint, CanaryConfig(version=body.version, share=body.share))
    detail = {"version": body.version, "share": body.share}
    await state.audit.append(actor=principal.actor, action="serve.canary_set", target=endpoint.uri, details=detail)
    return AdminResponse(model=name, outcome="canary_set", serving=_serving(endpoint), detail=detail)


@router.delete("/v1/models/{name}/canary", response_model=AdminResponse, responses=ERROR_RESPONSES)
async def delete_canary(name: str, state: ServeState = Depends(get_state),  # noqa: B008
                        principal: Principal = _ADMIN) -> AdminResponse:
    """Stop the canary: all traffic goes to the primary version."""
    endpoint = state.hub.get(name)
    await set_canary(state.hub, endpoint, None)
    await state.audit.append(actor=principal.actor, action="serve.canary_removed", target=endpoint.uri, details={})
    return AdminResponse(model=name, outcome="canary_removed", serving=_serving(endpoint))
