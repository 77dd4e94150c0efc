"""The FastAPI application factory.

``create_app(settings)`` wires routers and a lifespan that loads the model in the background: the HTTP
server answers ``/healthz`` at once and ``/readyz`` turns 200 only after the model is loaded and warmed.
A load failure leaves ``/readyz`` at 503 with the reason (the process stays up so the reason is visible).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from senseops_runtime import limits
from senseops_runtime.body_limit import BodyLimitMiddleware
from senseops_runtime.drain import REFUSED_HTTP_MESSAGE, refuses_http
from senseops_runtime.engine.base import Engine
from senseops_runtime.faults import FaultMiddleware, fault_plan
from senseops_runtime.recording import SpoolRecorder
from senseops_runtime.redaction import select_rules
from senseops_runtime.routers import console, health, openai_compat, stream, transcribe
from senseops_runtime.routers.common import MULTIPART_OVERHEAD
from senseops_runtime.scheduler import DecodeScheduler, PartialBatching
from senseops_runtime.services import Services
from senseops_runtime.settings import RuntimeSettings
from senseops_runtime.streaming.vad import SileroVad

log = logging.getLogger("senseops.runtime")
MODEL_VERSION_HEADER = "X-SenseOps-Model-Version"

EngineLoader = Callable[[RuntimeSettings], Engine]


def default_engine_loader(settings: RuntimeSettings) -> Engine:
    """Fetch (sha256-verified, cached) and load the configured model with the configured backend."""
    from senseops_runtime.engine.factory import load_engine
    from senseops_runtime.model_source import resolve_model_dir

    if not settings.model_uri:
        raise ValueError("SENSEOPS_MODEL_URI is not set (e.g. cos://models-1250000000/models/sensevoice/v1/)")
    model_dir = resolve_model_dir(
        settings.model_uri, settings.model_cache_dir or None, expected_sha256=settings.model_sha256 or None
    )
    # The engine warms itself up (both ITN modes) before it is published, so /readyz means "warm".
    return load_engine(
        model_dir,
        settings.backend,
        settings.device,
        threads=settings.threads or None,
        name=settings.model_name or None,
        version=settings.model_version or "local",
        warm_up=settings.warmup,
        spin_wait=settings.spin_wait,
    )


async def load_model(services: Services, loader: EngineLoader) -> None:
    """Load, warm and publish the engine; record failures as the readiness reason."""
    state = services.readiness
    started = time.perf_counter()
    state.reason = "loading and warming up the model"
    try:
        services.vad = await asyncio.to_thread(SileroVad)
        engine = await asyncio.to_thread(loader, services.settings)
        scheduler = DecodeScheduler(
            engine,
            services.settings.scheduler_max_pending,
            services.settings.scheduler_max_batch,
            on_decode=lambda kinds, secs, audio: services.metrics.observe_decode(
                [k.name.lower() for k in kinds], secs, audio, workers=services.settings.decode_workers
            ),
            on_depth=services.metrics.queue_depth.set,
            partial_batching=PartialBatching(
                max(1, services.settings.partial_batch_max_clips),
                int(services.settings.partial_batch_max_audio_s * limits.SAMPLE_RATE),
                services.settings.partial_batch_max_padding,
            ),
            workers=services.settings.decode_workers,
        )
        scheduler.start()
    except Exception as exc:
        log.exception("model load failed")
        state.reason = f"model load failed: {type(exc).__name__}: {exc}"[:500]
        return
    services.engine, services.scheduler = engine, scheduler
    services.metrics.set_model(engine.name, engine.version, engine.backend, time.perf_counter() - started)
    if services.drain.draining:
        return  # SIGTERM came while loading: stay unready, the process is on its way out
    state.ready, state.reason = True, "ready"
    log.info(
        "model %s %s (%s) ready in %.1f s",
        engine.name,
        engine.version,
        engine.backend,
        time.perf_counter() - started,
    )


async def drain_services(services: Services) -> None:
    """Run the graceful drain (see :mod:`senseops_runtime.drain`); returns when the process may exit.

    Streams and HTTP requests get until the drain timeout less a small reserve for the spool upload; the
    spool gets what is left. Whatever is still open at the deadline is left to the server's shutdown.
    """
    state, settings = services.drain, services.settings
    started = time.monotonic()
    if not state.begin(started):
        return
    deadline = started + settings.drain_timeout_s
    services.readiness.ready, services.readiness.reason = False, "draining: the process is shutting down"
    services.metrics.draining.set(1)
    log.info(
        "draining: %d open stream(s), %d HTTP request(s) in flight; at most %.0f s",
        state.open_streams, state.in_flight_http, settings.drain_timeout_s,
    )
    reserve = min(2.0, settings.drain_timeout_s / 4)
    while not state.settled and time.monotonic() < deadline - reserve:
        await asyncio.sleep(0.05)
    if not state.settled:
        log.warning(
            "drain timeout: %d stream(s) and %d request(s) still open are cut", state.open_streams, state.in_flight_http
        )
    if services.recorder is not None:
        left = max(0.0, deadline - time.monotonic())
        if not await asyncio.to_thread(services.recorder.spool.drain, left):
            log.warning("drain: %d recording file(s) not uploaded yet; they stay in the spool for the next start",
                        services.recorder.spool.pending_files)
    log.info("drained in %.1f s", time.monotonic() - started)


class DrainMiddleware:
    """While draining, new HTTP requests get 503 + Retry-After (probes and metrics still answer); requests
    already running are counted so the drain waits for them. WebSockets pass (the stream route answers 1012)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.services.drain
        path = str(scope.get("path", ""))
        if refuses_http(path, state.draining):
            self.services.metrics.drain_refusals.labels("http").inc()
            refusal = JSONResponse(
                {"detail": REFUSED_HTTP_MESSAGE},
                status_code=503,
                headers={"Retry-After": str(state.retry_after_s), "Connection": "close"},
            )
            await refusal(scope, receive, send)
            return
        counted = refuses_http(path, True)  # probes and scrapes do not hold a drain up
        state.in_flight_http += counted
        try:
            await self.app(scope, receive, send)
        finally:
            state.in_flight_http -= counted


def create_app(settings: RuntimeSettings | None = None, engine_loader: EngineLoader | None = None) -> FastAPI:
    """Build the application; ``settings`` default to the environment."""
    settings = settings or RuntimeSettings.from_env()
    select_rules(settings.redaction_rules)  # a typo in SENSEOPS_REDACTION_RULES fails the start, not a recording
    services = Services.from_settings(settings)
    if settings.auth_disabled:
        log.warning("AUTHENTICATION IS DISABLED (SENSEOPS_AUTH_DISABLED): every caller is admitted")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.recording_enabled:
            services.recorder = await asyncio.to_thread(
                SpoolRecorder.from_uri,
                settings.recording_store_uri,
                settings.spool_dir,
                select_rules(settings.redaction_rules),
                services.metrics.count_redactions,
            )
        loading = asyncio.create_task(load_model(services, engine_loader or default_engine_loader))
        yield
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        if services.scheduler:
            await services.scheduler.stop()
        if services.recorder:
            # After a drain the spool already had its turn (bounded by the drain timeout).
            await asyncio.to_thread(services.recorder.close, 1.0 if services.drain.draining else 10.0)

    app = FastAPI(title="SenseOps runtime", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    for router in (health.router, transcribe.router, openai_compat.router, stream.router, console.router):
        app.include_router(router)
    # Innermost, so the request counter below still sees its 413s.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    faults = fault_plan(os.environ, settings.model_version)
    if faults.error_ratio > 0:  # test-only (faults.py); inside the counter so Prometheus sees the 5xx
        log.warning("PLANTED FAULT: %.0f %% of HTTP requests answer 500", 100 * faults.error_ratio)
        app.add_middleware(FaultMiddleware, plan=faults)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        services.metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        # Which model answered (a canary's responses are told apart by clients and load tests).
        response.headers[MODEL_VERSION_HEADER] = services.engine.version if services.engine else "none"
        if response.status_code >= 400:
            services.metrics.errors.labels("http", str(response.status_code)).inc()
        return response

    # Outermost: a refusal while draining is not a request of the app (nor an error of the model).
    app.add_middleware(DrainMiddleware, services=services)
    return app
