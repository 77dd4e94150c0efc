"""``POST /api/transcribe``: a multipart upload, or JSON ``{"file_path": "cos://…" | "s3://…"}``.

Errors answer ``{"detail": "<sentence>"}`` with 400/401/403/404/413/415/422/429/503.
"""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from senseops_runtime.audio_input import AudioInputError, decode_audio
from senseops_runtime.engine.base import DecodeOptions
from senseops_runtime.routers.common import (
    ApiError,
    caller,
    charge_audio,
    check_declared_length,
    read_upload,
    refund_audio,
    require_ready,
)
from senseops_runtime.scheduler import Overloaded
from senseops_runtime.services import Services, ServicesDep
from senseops_runtime.stored_audio import SourceRefusal, check_audio_source, read_stored_audio
from senseops_runtime.streaming.decisions import SUPPORTED_LANGUAGES
from senseops_runtime.transcription import ClipResult, transcribe_clip

router = APIRouter(tags=["transcribe"])
log = logging.getLogger(__name__)


def decode_options(language: object, itn: object) -> DecodeOptions:
    """Validate the form/JSON options shared by both input kinds."""
    language = language or "auto"
    if language not in SUPPORTED_LANGUAGES:
        raise ApiError(422, f"language {language!r} not one of {', '.join(sorted(SUPPORTED_LANGUAGES))}")
    if isinstance(itn, str):
        if itn.lower() not in ("true", "false", "1", "0"):
            raise ApiError(422, "itn must be true or false")
        itn = itn.lower() in ("true", "1")
    if itn is None:
        itn = True
    if not isinstance(itn, bool):
        raise ApiError(422, "itn must be true or false")
    return DecodeOptions(language=str(language), itn=itn)


async def decode_bytes(services: Services, data: bytes) -> np.ndarray:
    """Bytes -> 16 kHz float32, off the event loop, limits enforced."""
    settings = services.settings
    try:
        return await asyncio.to_thread(decode_audio, data, settings.max_upload_bytes, settings.max_upload_seconds)
    except AudioInputError as exc:
        raise ApiError(exc.status, exc.message) from exc


async def run_clip(services: Services, clip: np.ndarray, options: DecodeOptions) -> ClipResult:
    """Decode through the scheduler; an overloaded queue is a 503 with Retry-After, an engine failure on
    this clip a 500 that names it (other requests, even in the same batch, are unaffected)."""
    try:
        return await transcribe_clip(services, clip, options)
    except Overloaded as exc:
        raise ApiError(503, f"server overloaded: {exc}", "server_error") from exc
    except Exception as exc:
        log.exception("model failed on an uploaded clip of %.1f s", len(clip) / 16_000)
        raise ApiError(500, "the model failed to decode this clip; see server logs", "server_error") from exc


@router.post("/api/transcribe")
async def transcribe(request: Request, services: ServicesDep) -> JSONResponse:
    """Transcribe an uploaded file (multipart field ``file``) or stored audio named by ``file_path``."""
    try:
        who = caller(services, request)
        require_ready(services)
        check_declared_length(services, request)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "multipart upload needs a 'file' field with the audio")
            options = decode_options(form.get("language"), form.get("itn"))
            data = await read_upload(services, upload)
        elif content_type.startswith("application/json"):
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                raise ApiError(400, "request body is not valid JSON") from exc
            if not isinstance(body, dict) or "file_path" not in body:
                raise ApiError(422, 'JSON body must be {"file_path": "cos://…" or "s3://…"}')
            checked = check_audio_source(body["file_path"], services.settings.audio_source_prefixes)
            if isinstance(checked, SourceRefusal):
                raise ApiError(checked.status, checked.message)
            options = decode_options(body.get("language"), body.get("itn"))
            try:
                data = await asyncio.to_thread(read_stored_audio, checked, services.settings.max_upload_bytes)
            except AudioInputError as exc:
                raise ApiError(exc.status, exc.message) from exc
        else:
            raise ApiError(415, "send multipart/form-data with a 'file' field, or JSON with 'file_path'")
        clip = await decode_bytes(services, data)
        seconds = len(clip) / 16_000
        charge_audio(services, who, seconds)
        try:
            result = await run_clip(services, clip, options)
        except ApiError:
            refund_audio(services, who, seconds)  # the budget pays for transcribed audio only
            raise
    except ApiError as exc:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)
    engine = services.engine
    assert engine is not None
    t = result.transcript
    return JSONResponse(
        {
            "text": t.text,
            "lang": t.lang,
            "emotion": t.emotion,
            "event": t.event,
            "confidence": round(t.confidence, 4),
            "duration_s": round(result.duration_s, 3),
            "no_speech": result.no_speech,
            "model": {"name": engine.name, "version": engine.version, "backend": engine.backend},
        }
    )
