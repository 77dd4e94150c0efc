"""Decode uploaded or stored audio into 16 kHz mono float32, with the server's limits.

Formats are whatever libsndfile reads (WAV, FLAC, OGG/Opus, MP3 with libsndfile >= 1.1); resampling uses
soxr. Errors are :class:`AudioInputError` carrying the HTTP status and a sentence for the client.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from senseops_runtime import limits


class AudioInputError(Exception):
    """Audio the server will not decode; ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_size(size: int, max_bytes: int) -> None:
    """413 when an upload is larger than allowed."""
    if size > max_bytes:
        raise AudioInputError(413, f"audio is {size} bytes; the limit is {max_bytes} bytes")
    if size == 0:
        raise AudioInputError(422, "audio file is empty")


def decode_audio(data: bytes, max_bytes: int, max_seconds: float) -> np.ndarray:
    """Bytes of an audio file -> float32 mono samples at 16 kHz in [-1, 1]."""
    check_size(len(data), max_bytes)
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioInputError(422, "could not decode the audio; send WAV, FLAC, OGG or MP3") from exc
    if info.samplerate < limits.MIN_INPUT_SAMPLE_RATE:
        raise AudioInputError(
            422,
            f"sample rate {info.samplerate} Hz is below {limits.MIN_INPUT_SAMPLE_RATE} Hz; record at 16 kHz",
        )
    if info.frames <= 0:
        raise AudioInputError(422, "audio contains no samples")
    duration = info.frames / info.samplerate
    if duration > max_seconds:
        raise AudioInputError(
            422, f"audio is {duration:.1f} s long; the limit is {max_seconds:.0f} s (split it or stream it)"
        )
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioInputError(422, "could not decode the audio; the file looks truncated or corrupt") from exc
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != limits.SAMPLE_RATE:
        mono = soxr.resample(mono, rate, limits.SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def pcm16_to_float(frame: bytes) -> np.ndarray:
    """16-bit little-endian PCM bytes -> float32 in [-1, 1]."""
    return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
