"""schemathesis against the real server's OpenAPI: every HTTP route, without a token, with a plain
token and with an admin token — never a 5xx, and the server stays ready. Example counts are bounded so
this fits in `make test`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.runtime.conftest import make_token
from tests.runtime.server import RuntimeServer

MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def runtime_schema(runtime_server: RuntimeServer) -> Any:
    return schemathesis.openapi.from_url(f"{runtime_server.http}/openapi.json")


schema = schemathesis.pytest.from_fixture("runtime_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_5xx_with_or_without_auth(case: Any, runtime_server: RuntimeServer) -> None:
    for auth in (None, make_token(), make_token(scopes=["admin"])):
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        response = case.call(headers=headers, timeout=60)
        assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"


def test_openapi_lists_every_http_route(runtime_server: RuntimeServer) -> None:
    paths = set(httpx.get(f"{runtime_server.http}/openapi.json").json()["paths"])
    assert {"/api/transcribe", "/api/health", "/healthz", "/readyz", "/metrics", "/api/usage"} <= paths
    assert httpx.get(f"{runtime_server.http}/readyz").status_code == 200
