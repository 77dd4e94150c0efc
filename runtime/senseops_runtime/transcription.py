"""Offline transcription of a whole clip, shared by ``/api/transcribe`` and the OpenAI-compatible route."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from senseops_runtime import limits
from senseops_runtime.engine.base import DecodeOptions, Transcript
from senseops_runtime.scheduler import Priority
from senseops_runtime.services import Services


@dataclass(frozen=True)
class ClipResult:
    """A clip's transcript, or ``no_speech`` when the VAD found none (then the model is not called)."""

    transcript: Transcript
    duration_s: float
    no_speech: bool


def has_speech(services: Services, clip: np.ndarray) -> bool:
    """Does any 32 ms chunk score as speech? (blocking; run in a thread)."""
    assert services.vad is not None
    stream = services.vad.stream()
    step = limits.VAD_CHUNK_SAMPLES
    padded = np.concatenate([clip, np.zeros((-len(clip)) % step, np.float32)])
    return any(p >= limits.VAD_THRESHOLD for p in stream.score_many(padded))


async def transcribe_clip(services: Services, clip: np.ndarray, options: DecodeOptions) -> ClipResult:
    """Decode one clip through the shared scheduler (raises ``Overloaded`` when the queue is full)."""
    assert services.scheduler is not None
    duration = len(clip) / limits.SAMPLE_RATE
    metrics = services.metrics
    metrics.audio_seconds.labels(*metrics.model_labels, "upload").inc(duration)
    if not await asyncio.to_thread(has_speech, services, clip):
        return ClipResult(Transcript(text=""), duration, no_speech=True)
    transcript = await services.scheduler.decode(clip, options, Priority.UPLOAD)
    return ClipResult(transcript, duration, no_speech=False)
