"""``WS /ws/stream``: authenticate, admit against quotas, read options, run a :class:`StreamSession`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from senseops_runtime import limits
from senseops_runtime.auth import AuthRefusal, Principal, verify_token
from senseops_runtime.drain import DRAIN_CLOSE_REASON, REFUSED_STREAM_REASON
from senseops_runtime.quotas import QuotaRefusal, QuotaUnavailable
from senseops_runtime.services import Services, WsServicesDep
from senseops_runtime.streaming.decisions import CloseVerdict, StreamOptions, is_eof_message, parse_options
from senseops_runtime.streaming.session import StreamSession, day_of

router = APIRouter(tags=["streaming"])
log = logging.getLogger(__name__)

DEV_PRINCIPAL = Principal(subject="dev", anchor_id="dev", scopes=frozenset({"admin"}), consent=False)


def bearer_from(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <jwt>`` header."""
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def authenticate(services: Services, token: str | None, scope: str) -> Principal | AuthRefusal:
    """Verify a token against the configured key (or admit everyone when auth is disabled)."""
    if services.auth is None:
        return DEV_PRINCIPAL
    return verify_token(token, services.auth, scope, time.time())


async def _close(ws: WebSocket, verdict: CloseVerdict, services: Services) -> None:
    services.metrics.ws_closes.labels(str(verdict.code)).inc()
    # 1012 is a draining replica handing the client to another one, not an error.
    if verdict.code not in (limits.CLOSE_NORMAL, limits.CLOSE_SERVICE_RESTART):
        services.metrics.errors.labels("ws", str(verdict.code)).inc()
    if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await ws.close(code=verdict.code, reason=verdict.reason.encode()[:123].decode(errors="ignore"))


@router.websocket("/ws/stream")
async def stream(ws: WebSocket, services: WsServicesDep) -> None:
    """Stream 16 kHz s16le mono PCM in, partial and final transcripts out (see the module docstring)."""
    # Accept first: a close before accept becomes an HTTP 403 and the client never sees the reason.
    await ws.accept()
    # Counted from here so a drain waits for this stream's close frame too.
    services.drain.open_streams += 1
    try:
        await _admit_and_serve(ws, services)
    finally:
        services.drain.open_streams -= 1


async def _admit_and_serve(ws: WebSocket, services: Services) -> None:
    if services.drain.draining:
        services.metrics.drain_refusals.labels("ws").inc()
        await _close(ws, CloseVerdict(limits.CLOSE_SERVICE_RESTART, REFUSED_STREAM_REASON), services)
        return
    token = ws.query_params.get("token") or bearer_from(ws.headers.get("authorization"))
    who = authenticate(services, token, limits.SCOPE_STREAM)
    if isinstance(who, AuthRefusal):
        await _close(ws, CloseVerdict(limits.CLOSE_POLICY, who.reason), services)
        return
    if not services.readiness.ready or services.scheduler is None:
        await _close(
            ws,
            CloseVerdict(limits.CLOSE_TRY_AGAIN_LATER, f"not ready: {services.readiness.reason}"),
            services,
        )
        return
    try:
        admitted = services.ledger.open_stream(who.subject, day_of(time.time()))
    except QuotaUnavailable as exc:
        await _close(ws, CloseVerdict(limits.CLOSE_TRY_AGAIN_LATER, str(exc)), services)
        return
    if isinstance(admitted, QuotaRefusal):
        await _close(ws, CloseVerdict(limits.CLOSE_POLICY, admitted.reason), services)
        return
    services.metrics.active_streams.inc()
    try:
        verdict = await _serve(ws, services, who)
    except Exception:
        log.exception("stream failed")
        verdict = CloseVerdict(limits.CLOSE_INTERNAL, "internal error; see server logs")
    finally:
        services.metrics.active_streams.dec()
        services.ledger.close_stream(who.subject, admitted.lease)
    if verdict.code:
        await _close(ws, verdict, services)


async def _serve(ws: WebSocket, services: Services, who: Principal) -> CloseVerdict:
    # The first message, unless the drain begins first (a silent client must not hold a drain up).
    drain_watch = services.drain.watch()
    receive = asyncio.ensure_future(ws.receive())
    waiters: set[asyncio.Future[Any]] = {receive, drain_watch}
    try:
        done, _ = await asyncio.wait(waiters, timeout=limits.OPTIONS_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        drain_watch.cancel()
    if receive not in done:
        receive.cancel()
        if services.drain.draining:
            return CloseVerdict(limits.CLOSE_SERVICE_RESTART, DRAIN_CLOSE_REASON)
        return CloseVerdict(limits.CLOSE_POLICY, f"no data within {limits.OPTIONS_TIMEOUT_S:.0f} s")
    first = receive.result()
    if first["type"] == "websocket.disconnect":
        return CloseVerdict(0, "client closed")
    options = StreamOptions()
    pushback = []
    if first.get("text") is not None:
        if is_eof_message(first["text"]):
            return CloseVerdict(limits.CLOSE_NORMAL, "end of stream")
        parsed = parse_options(first["text"])
        if isinstance(parsed, CloseVerdict):
            return parsed
        options = parsed
    else:
        pushback.append(first)
    session = StreamSession(ws, services, who, options)
    session.pushback = pushback
    return await session.run()
