"""The test-only fault planting (runtime/senseops_runtime/faults.py): off by default, keyed on the model
version, an exact deterministic share of failures, probes and scrapes spared."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from senseops_runtime.faults import FaultMiddleware, FaultPlan, fault_plan, planted_failure


@pytest.mark.parametrize(("env", "version", "ratio"), [
    ({}, "v2", 0.0),
    ({"SENSEOPS_FAULT_ERROR_RATIO": "0.5"}, "v2", 0.0),  # no versions named: off
    ({"SENSEOPS_FAULT_MODEL_VERSIONS": "v2"}, "v2", 0.0),  # no ratio: off
    ({"SENSEOPS_FAULT_ERROR_RATIO": "0.5", "SENSEOPS_FAULT_MODEL_VERSIONS": "v2"}, "v2", 0.5),
    ({"SENSEOPS_FAULT_ERROR_RATIO": "0.5", "SENSEOPS_FAULT_MODEL_VERSIONS": "v1, v2 "}, "v2", 0.5),
    ({"SENSEOPS_FAULT_ERROR_RATIO": "0.5", "SENSEOPS_FAULT_MODEL_VERSIONS": "v2"}, "v1", 0.0),  # other version
    ({"SENSEOPS_FAULT_ERROR_RATIO": "1", "SENSEOPS_FAULT_MODEL_VERSIONS": "bad"}, "bad", 1.0),
])
def test_fault_plan(env: dict[str, str], version: str, ratio: float) -> None:
    assert fault_plan(env, version) == FaultPlan(ratio)


@pytest.mark.parametrize("raw", ["half", "1.5", "-0.1"])
def test_fault_plan_refuses_bad_ratios(raw: str) -> None:
    with pytest.raises(ValueError, match="SENSEOPS_FAULT_ERROR_RATIO"):
        fault_plan({"SENSEOPS_FAULT_ERROR_RATIO": raw, "SENSEOPS_FAULT_MODEL_VERSIONS": "v2"}, "v2")


@pytest.mark.parametrize(("ratio", "n", "failed"), [(0.0, 100, 0), (0.25, 100, 25), (0.3, 10, 3), (0.5, 7, 3),
                                                     (1.0, 9, 9)])
def test_planted_failures_are_an_exact_share(ratio: float, n: int, failed: int) -> None:
    assert sum(planted_failure(i, ratio) for i in range(n)) == failed


def test_middleware_fails_its_share_and_spares_probes() -> None:
    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route(p, ok) for p in ("/api/health", "/readyz", "/healthz", "/metrics")])
    app.add_middleware(FaultMiddleware, plan=FaultPlan(0.5))
    with TestClient(app) as client:
        codes = [client.get("/api/health").status_code for _ in range(10)]
        probes = {client.get(p).status_code for p in ("/readyz", "/healthz", "/metrics") for _ in range(4)}
    assert codes.count(500) == 5 and codes.count(200) == 5
    assert probes == {200}
