"""The full-queue gate in front of the routes: which prediction paths it refuses, and when."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modelyard.core.refs import ModelRef
from modelyard.serve.hub import Deployment, ModelEndpoint
from modelyard.serve.shedding import full_deployments


def _deployment(version: int, depth: int, role: str = "primary") -> Deployment:
    batcher: Any = SimpleNamespace(depth=depth, max_queue=4)
    return Deployment(name="m", version=version, ref=ModelRef(id="x" * 64), predictor=None,  # type: ignore[arg-type]
                      batcher=batcher, role=role)


def _hub(primary_depth: int, canary_depth: int | None = None) -> Any:
    endpoint = ModelEndpoint(name="m", selector="prod", primary=_deployment(1, primary_depth))
    if canary_depth is not None:
        endpoint.canary, endpoint.canary_share = _deployment(2, canary_depth, "canary"), 0.1
    return SimpleNamespace(endpoints={"m": endpoint})


PREDICT_PATHS = ["/v1/models/m:predict", "/v2/models/m/infer", "/v1/models/m/versions/1:predict",
                 "/v2/models/m/versions/v1/infer"]


@pytest.mark.parametrize("path", PREDICT_PATHS)
def test_every_prediction_route_of_a_full_model_is_refused(path: str) -> None:
    assert [d.version for d in full_deployments(_hub(4), path)] == [1]
    assert full_deployments(_hub(3), path) == []                     # room for one more input


@pytest.mark.parametrize("path", ["/v2/models/m", "/v2/models/m/ready", "/v1/models/other:predict",
                                  "/v2/models/m/versions/7/infer", "/v2/models/m/versions/x/infer",
                                  "/v1/models/m:explain", "/metrics"])
def test_other_paths_models_and_versions_go_on_to_the_routes(path: str) -> None:
    assert full_deployments(_hub(4), path) == []


def test_a_canary_with_room_keeps_the_model_open_but_not_the_full_version() -> None:
    hub = _hub(4, canary_depth=0)
    assert full_deployments(hub, "/v1/models/m:predict") == []       # the canary may take it
    assert [d.version for d in full_deployments(hub, "/v1/models/m/versions/1:predict")] == [1]
    assert full_deployments(hub, "/v2/models/m/versions/2/infer") == []
    assert [d.version for d in full_deployments(_hub(4, canary_depth=4), "/v2/models/m/infer")] == [1, 2]
