"""Pieces the HTTP routers share: the caller's identity, upload reading, readiness and quota checks."""

from __future__ import annotations

import time

from fastapi import Request
from starlette.datastructures import UploadFile

from senseops_runtime import limits
from senseops_runtime.audio_input import AudioInputError, check_size
from senseops_runtime.auth import AuthRefusal, Principal
from senseops_runtime.quotas import QuotaUnavailable
from senseops_runtime.routers.stream import authenticate, bearer_from
from senseops_runtime.services import Services
from senseops_runtime.streaming.session import day_of

MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around the file


class ApiError(Exception):
    """An HTTP error with a client-facing sentence; routers render it in their own format."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def caller(services: Services, request: Request) -> Principal:
    """The verified caller of an HTTP request (needs the ``transcribe`` scope)."""
    who = authenticate(services, bearer_from(request.headers.get("authorization")), limits.SCOPE_TRANSCRIBE)
    if isinstance(who, AuthRefusal):
        kind = "authentication_error" if who.status == 401 else "permission_error"
        raise ApiError(who.status, who.reason, kind)
    return who


def require_ready(services: Services) -> None:
    """503 until the model is loaded and warm."""
    if not services.readiness.ready:
        raise ApiError(503, f"model not ready: {services.readiness.reason}", "server_error")


def check_declared_length(services: Services, request: Request) -> None:
    """413 early, from Content-Length, before the body is parsed."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > services.settings.max_upload_bytes + MULTIPART_OVERHEAD:
        raise ApiError(
            413, f"request is {declared} bytes; the audio limit is {services.settings.max_upload_bytes} bytes"
        )


async def read_upload(services: Services, upload: UploadFile) -> bytes:
    """Read an uploaded file, refusing more than the configured bytes."""
    limit = services.settings.max_upload_bytes
    data = await upload.read(limit + 1)
    try:
        check_size(len(data), limit)
    except AudioInputError as exc:
        raise ApiError(exc.status, exc.message) from exc
    return data


def refund_audio(services: Services, who: Principal, seconds: float) -> None:
    """Undo :func:`charge_audio` when the audio was not transcribed (503, engine failure)."""
    services.ledger.refund(who.subject, who.anchor_id, seconds, day_of(time.time()))


def charge_audio(services: Services, who: Principal, seconds: float) -> None:
    """Meter uploaded audio against the caller's daily budget (429 when it is used up)."""
    try:
        charged = services.ledger.charge(who.subject, who.anchor_id, seconds, day_of(time.time()))
    except QuotaUnavailable as exc:
        raise ApiError(503, str(exc), "server_error") from exc
    if not charged:
        raise ApiError(429, "daily audio budget used up; try again tomorrow (UTC)", "rate_limit_error")
