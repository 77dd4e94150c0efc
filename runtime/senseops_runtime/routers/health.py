"""Liveness, readiness, the seed's ``/api/health``, Prometheus ``/metrics`` and per-subject usage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from senseops_runtime import limits
from senseops_runtime.auth import AuthRefusal
from senseops_runtime.routers.stream import authenticate, bearer_from
from senseops_runtime.services import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, bool]:
    """The process is alive (the event loop answers)."""
    return {"ok": True}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """200 once the model is loaded and warmed; 503 with the reason until then (or after a failure)."""
    state = services.readiness
    body: dict[str, object] = {"ready": state.ready, "reason": state.reason}
    if services.engine is not None:
        body["model"] = {
            "name": services.engine.name,
            "version": services.engine.version,
            "backend": services.engine.backend,
        }
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/api/health")
def api_health(services: ServicesDep) -> JSONResponse:
    """The seed's health endpoint: ``{"ok": true}`` only when ready (it gates traffic in the seed)."""
    ok = services.readiness.ready
    return JSONResponse({"ok": ok, "reason": services.readiness.reason}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(services: ServicesDep) -> Response:
    """Prometheus text format: the server's own registry plus process-wide ones (spool, process)."""
    return Response(services.metrics.render() + generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/usage")
def usage(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> dict[str, object]:
    """Metered audio seconds per subject and anchor since start (needs the ``admin`` scope)."""
    who = authenticate(services, bearer_from(authorization), limits.SCOPE_ADMIN)
    if isinstance(who, AuthRefusal):
        raise HTTPException(who.status, who.reason)
    return {"usage": services.ledger.metering()}
