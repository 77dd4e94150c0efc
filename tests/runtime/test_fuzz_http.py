"""schemathesis against the real server's OpenAPI: every HTTP route, without a token, with a plain
token and with an admin token — never a 5xx, and the server stays ready. Example counts are bounded so
this fits in `make test`."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.runtime.conftest import make_token
from tests.runtime.server import RuntimeServer

MAX_EXAMPLES = 15


def test_no_route_answers_5xx_with_or_without_auth(runtime_server: RuntimeServer) -> None:
    # schemathesis' pytest plugin (from_fixture) does not run under pytest 9, so the operations are
    # driven with hypothesis directly: one bounded search per operation.
    schema = schemathesis.openapi.from_url(f"{runtime_server.http}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    tokens = (None, make_token(), make_token(scopes=["admin"]))
    for operation in operations:

        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def no_5xx(case: Any) -> None:
            for token in tokens:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = case.call(headers=headers, timeout=60)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                )

        no_5xx()
    assert httpx.get(f"{runtime_server.http}/readyz").status_code == 200


def test_openapi_lists_every_http_route(runtime_server: RuntimeServer) -> None:
    paths = set(httpx.get(f"{runtime_server.http}/openapi.json").json()["paths"])
    assert {"/api/transcribe", "/api/health", "/healthz", "/readyz", "/metrics", "/api/usage"} <= paths
    assert httpx.get(f"{runtime_server.http}/readyz").status_code == 200
