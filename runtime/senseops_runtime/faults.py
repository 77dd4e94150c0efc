"""Test-only fault planting: make a chosen model version answer errors, so a Rollout's analysis has a real
regression to catch (tests/operator/test_rollout_e2e.py). Off unless both variables are set:

* ``SENSEOPS_FAULT_ERROR_RATIO`` — fraction (0..1) of requests answered ``500 planted fault``;
* ``SENSEOPS_FAULT_MODEL_VERSIONS`` — comma list of model versions (``SENSEOPS_MODEL_VERSION``) it applies
  to; a pod serving any other version is untouched. Keying on the version lets one Deployment template
  (whose copy the operator makes for a candidate) carry the fault for one candidate model only.

Probes and scrapes (``/healthz``, ``/readyz``, ``/metrics``) are never failed: the pod stays Ready and
visible to Prometheus, which then sees the 5xx in ``senseops_http_requests_total``. Failures are spread
deterministically (every 1/ratio-th request), not drawn at random, so a test knows what it planted.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

ERROR_RATIO_ENV = "SENSEOPS_FAULT_ERROR_RATIO"
VERSIONS_ENV = "SENSEOPS_FAULT_MODEL_VERSIONS"
SPARED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
FAULT_BODY = b"planted fault (SENSEOPS_FAULT_ERROR_RATIO)"


@dataclass(frozen=True)
class FaultPlan:
    """What to plant in this process: a ratio of failed requests (0: nothing)."""

    error_ratio: float = 0.0


def fault_plan(environ: Mapping[str, str], model_version: str) -> FaultPlan:
    """The plan for a process serving ``model_version`` (pure). Invalid values are errors, not silence."""
    raw = environ.get(ERROR_RATIO_ENV, "").strip()
    versions = {v.strip() for v in environ.get(VERSIONS_ENV, "").split(",") if v.strip()}
    if not raw or not versions:
        return FaultPlan()
    try:
        ratio = float(raw)
    except ValueError as exc:
        raise ValueError(f"{ERROR_RATIO_ENV}={raw!r} is not a number between 0 and 1") from exc
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{ERROR_RATIO_ENV}={raw!r} is outside 0..1")
    return FaultPlan(ratio if model_version in versions else 0.0)


def planted_failure(index: int, ratio: float) -> bool:
    """Whether request number ``index`` (0, 1, …) fails: exactly floor(n × ratio) of the first n do."""
    return int((index + 1) * ratio) > int(index * ratio)


class FaultMiddleware:
    """ASGI middleware answering the planned share of HTTP requests with 500 (WebSockets pass through)."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app, self.plan = app, plan
        self._count = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in SPARED_PATHS \
                or not planted_failure(next(self._count), self.plan.error_ratio):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(FAULT_BODY)).encode())]})
        await send({"type": "http.response.body", "body": FAULT_BODY})
