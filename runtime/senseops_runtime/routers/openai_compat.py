"""``POST /v1/audio/transcriptions``, compatible with the OpenAI audio API so existing clients work.

Fields: ``file`` (required), ``model`` (required by the API; any value selects the loaded model),
``language`` (ISO-639-1), ``response_format`` (json, text, verbose_json), ``prompt`` and ``temperature``
(accepted, ignored: SenseVoice is non-autoregressive). The API key is the runtime's JWT. Errors use
OpenAI's ``{"error": {"message", "type", "param", "code"}}`` shape.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile

from senseops_runtime.routers.common import (
    ApiError,
    caller,
    charge_audio,
    check_declared_length,
    read_upload,
    require_ready,
)
from senseops_runtime.routers.transcribe import decode_bytes, decode_options, run_clip
from senseops_runtime.services import ServicesDep

router = APIRouter(tags=["openai"])

RESPONSE_FORMATS = ("json", "text", "verbose_json")
# OpenAI's verbose_json names the language in English words.
LANGUAGE_NAMES = {"zh": "chinese", "en": "english", "yue": "cantonese", "ja": "japanese", "ko": "korean"}


def _error(exc: ApiError, param: str | None = None) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return JSONResponse(
        {"error": {"message": exc.message, "type": exc.kind, "param": param, "code": exc.status}},
        status_code=exc.status,
        headers=headers,
    )


@router.post("/v1/audio/transcriptions")
async def transcriptions(request: Request, services: ServicesDep) -> Response:
    """OpenAI-style transcription of one uploaded file."""
    try:
        caller_principal = caller(services, request)
        require_ready(services)
        check_declared_length(services, request)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "send multipart/form-data with 'file' and 'model'")
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _error(ApiError(400, "the 'file' field with the audio is required"), "file")
        if not form.get("model"):
            return _error(ApiError(400, "the 'model' field is required"), "model")
        response_format = str(form.get("response_format") or "json")
        if response_format not in RESPONSE_FORMATS:
            return _error(
                ApiError(
                    400,
                    f"response_format {response_format!r} not supported; use {', '.join(RESPONSE_FORMATS)}",
                ),
                "response_format",
            )
        options = decode_options(form.get("language") or "auto", None)
        data = await read_upload(services, upload)
        clip = await decode_bytes(services, data)
        charge_audio(services, caller_principal, len(clip) / 16_000)
        result = await run_clip(services, clip, options)
    except ApiError as exc:
        return _error(exc)
    t = result.transcript
    if response_format == "text":
        return PlainTextResponse(t.text + "\n")
    if response_format == "json":
        return JSONResponse({"text": t.text})
    logprob = math.log(t.confidence) if t.confidence > 0 else -10.0
    return JSONResponse(
        {
            "task": "transcribe",
            "language": LANGUAGE_NAMES.get(t.lang, t.lang or "unknown"),
            "duration": round(result.duration_s, 3),
            "text": t.text,
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": round(result.duration_s, 3),
                    "text": t.text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": round(logprob, 4),
                    "compression_ratio": 1.0,
                    "no_speech_prob": 1.0 if result.no_speech else 0.0,
                }
            ]
            if t.text
            else [],
        }
    )
