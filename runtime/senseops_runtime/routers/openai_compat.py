"""``POST /v1/audio/transcriptions``, compatible with the OpenAI audio API so existing clients work.

Fields: ``file`` (required), ``model`` (required by the API; any value selects the loaded model),
``language`` (ISO-639-1), ``response_format`` (json, text, verbose_json, srt, vtt),
``timestamp_granularities[]`` (``segment``; ``word`` is refused with a clear message), ``prompt`` and
``temperature`` (accepted, ignored: SenseVoice is non-autoregressive). The API key is the runtime's JWT.
Errors use OpenAI's ``{"error": {"message", "type", "param", "code"}}`` shape.

``json`` and ``text`` decode the whole clip at once. The timed formats (``verbose_json``, ``srt``, ``vtt``)
cut the clip into speech segments with the streaming path's VAD segmenter and decode each segment, so
every segment carries its own start and end time.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile

from senseops_runtime import limits
from senseops_runtime.engine.base import DecodeOptions, Transcript
from senseops_runtime.routers.common import (
    ApiError,
    caller,
    charge_audio,
    check_declared_length,
    read_upload,
    refund_audio,
    require_ready,
)
from senseops_runtime.routers.transcribe import decode_bytes, decode_options, run_clip
from senseops_runtime.scheduler import Overloaded, Priority
from senseops_runtime.services import Services, ServicesDep
from senseops_runtime.streaming.segmenter import SegmenterConfig
from senseops_runtime.subtitles import (
    GranularityError,
    TimedSegment,
    check_granularities,
    format_srt,
    format_vtt,
    join_texts,
    seconds,
    speech_spans,
)

router = APIRouter(tags=["openai"])

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
TIMED_FORMATS = frozenset({"verbose_json", "srt", "vtt"})
# OpenAI's verbose_json names the language in English words.
LANGUAGE_NAMES = {"zh": "chinese", "en": "english", "yue": "cantonese", "ja": "japanese", "ko": "korean"}


def _error(exc: ApiError, param: str | None = None) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return JSONResponse(
        {"error": {"message": exc.message, "type": exc.kind, "param": param, "code": exc.status}},
        status_code=exc.status,
        headers=headers,
    )


def _speech_probabilities(services: Services, clip: np.ndarray) -> list[float]:
    """One VAD score per 32 ms chunk of the clip (blocking; run in a thread)."""
    assert services.vad is not None
    step = limits.VAD_CHUNK_SAMPLES
    padded = np.concatenate([clip, np.zeros((-len(clip)) % step, np.float32)])
    return services.vad.stream().score_many(padded)


async def transcribe_segments(
    services: Services, clip: np.ndarray, options: DecodeOptions
) -> list[tuple[TimedSegment, Transcript]]:
    """Cut the clip at pauses (VAD) and decode each speech segment; segments that decode empty are left out."""
    assert services.scheduler is not None
    metrics = services.metrics
    metrics.audio_seconds.labels(*metrics.model_labels, "upload").inc(len(clip) / limits.SAMPLE_RATE)
    probabilities = await asyncio.to_thread(_speech_probabilities, services, clip)
    spans = speech_spans(probabilities, len(clip), SegmenterConfig())
    transcripts: list[Transcript] = []
    # Submit at most one batch at a time so a long clip with many pauses cannot fill the shared queue.
    group = max(1, services.settings.scheduler_max_batch)
    try:
        for i in range(0, len(spans), group):
            decodes = [services.scheduler.decode(clip[a:b], options, Priority.UPLOAD) for a, b in spans[i : i + group]]
            transcripts += await asyncio.gather(*decodes)
    except Overloaded as exc:
        raise ApiError(503, f"server overloaded: {exc}", "server_error") from exc
    return [
        (TimedSegment(seconds(a), seconds(b), t.text.strip()), t)
        for (a, b), t in zip(spans, transcripts, strict=True)
        if t.text.strip()
    ]


def _verbose_json(duration_s: float, decoded: list[tuple[TimedSegment, Transcript]]) -> dict[str, object]:
    """OpenAI's ``verbose_json`` body with one entry per speech segment."""
    langs = [t.lang for _, t in decoded if t.lang]
    lang = max(set(langs), key=langs.count) if langs else ""
    segments = []
    for i, (seg, t) in enumerate(decoded):
        logprob = math.log(t.confidence) if t.confidence > 0 else -10.0
        segments.append(
            {
                "id": i,
                "seek": 0,
                "start": seg.start_s,
                "end": seg.end_s,
                "text": seg.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": round(logprob, 4),
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
        )
    return {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(lang, lang or "unknown"),
        "duration": round(duration_s, 3),
        "text": join_texts(seg.text for seg, _ in decoded),
        "segments": segments,
    }


# The form is parsed by hand (limits before parsing), so the OpenAPI document is spelled out here.
OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "model"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "WAV, FLAC, OGG or MP3"},
                        "model": {"type": "string", "description": "any value; the loaded model answers"},
                        "language": {"type": "string", "enum": ["auto", "zh", "en", "yue", "ja", "ko"]},
                        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
                        "timestamp_granularities[]": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["segment"]},
                            "description": "segment (the default); word is refused",
                        },
                        "prompt": {"type": "string", "description": "accepted, ignored"},
                        "temperature": {"type": "number", "description": "accepted, ignored"},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "json/verbose_json as JSON, text as text/plain, srt and vtt as subtitles",
            "content": {
                "application/json": {},
                "text/plain": {},
                "application/x-subrip": {},
                "text/vtt": {},
            },
        }
    },
}


@router.post("/v1/audio/transcriptions", openapi_extra=OPENAPI)
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
        # OpenAI's clients send the list as repeated ``timestamp_granularities[]`` fields.
        granularities = [
            str(v) for key in ("timestamp_granularities[]", "timestamp_granularities") for v in form.getlist(key)
        ]
        try:
            check_granularities(granularities)
        except GranularityError as exc:
            return _error(ApiError(400, str(exc)), "timestamp_granularities")
        options = decode_options(form.get("language") or "auto", None)
        data = await read_upload(services, upload)
        clip = await decode_bytes(services, data)
        audio_s = len(clip) / limits.SAMPLE_RATE
        charge_audio(services, caller_principal, audio_s)
        try:
            if response_format in TIMED_FORMATS:
                decoded = await transcribe_segments(services, clip, options)
            else:
                result = await run_clip(services, clip, options)
        except ApiError:
            refund_audio(services, caller_principal, audio_s)  # the budget pays for transcribed audio only
            raise
    except ApiError as exc:
        return _error(exc)
    if response_format == "srt":
        return PlainTextResponse(format_srt([seg for seg, _ in decoded]), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(format_vtt([seg for seg, _ in decoded]), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(_verbose_json(len(clip) / limits.SAMPLE_RATE, decoded))
    if response_format == "text":
        return PlainTextResponse(result.transcript.text + "\n")
    return JSONResponse({"text": result.transcript.text})
