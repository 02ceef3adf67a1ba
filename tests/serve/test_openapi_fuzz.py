"""schemathesis against the server's own ``/openapi.json`` on a real uvicorn: no request may cause a 5xx.

Every operation in the schema gets generated requests (valid and invalid bodies, path
values, headers) with an admin key, so auth lets them through to the input checks; the
server has to refuse what is wrong with a 4xx and never answer a 5xx.
Slow (CI runs it): a few hundred requests against a live server.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi._hypothesis  # imported now, see below
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.serve.conftest import ADMIN, LiveServer, ServeModels, bearer, make_app

pytestmark = pytest.mark.slow

# pytest assertion-rewrites every module of a package that ships a pytest plugin (schemathesis
# does). Imported lazily inside a running hypothesis test, which raises the recursion limit,
# CPython 3.11's parser then fails with "AST constructor recursion depth mismatch"; importing
# the strategy module at collection time avoids that.


def test_no_generated_request_causes_a_server_error(serve_models: ServeModels) -> None:
    # The operations are walked by hand: schemathesis' pytest plugin does not load under this pytest.
    app = make_app(serve_models)
    server = LiveServer(app).start()
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def fuzz(case: Any) -> None:
                case.call_and_validate(headers=bearer(ADMIN), checks=[not_a_server_error])

            fuzz()
    finally:
        server.stop()
    statuses = Counter()
    for sample in app.state.metrics.requests.collect()[0].samples:
        if sample.name.endswith("_total"):
            statuses[sample.labels["code"]] += int(sample.value)
    # The fuzzing reached the server: many requests, valid (2xx) and refused (4xx) ones, and no 5xx at all.
    assert sum(statuses.values()) >= 10 * len(operations), statuses
    assert any(c.startswith("2") for c in statuses) and any(c.startswith("4") for c in statuses), statuses
    assert not [c for c in statuses if c.startswith("5")], statuses
