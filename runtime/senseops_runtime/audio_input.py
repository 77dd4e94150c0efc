"""Decode uploaded or stored audio into 16 kHz mono float32, with the server's limits.

Formats are whatever libsndfile reads (WAV, FLAC, OGG/Opus, MP3 with libsndfile >= 1.1); resampling uses
soxr. Errors are :class:`AudioInputError` carrying the HTTP status and a sentence for the client.

Hostile files are refused before decoding, from the header alone: absurd sample rates or channel counts,
and a decoded size beyond the limit (a small compressed file can claim billions of samples). After
decoding, NaN/Inf samples (possible in float WAV/FLAC) are refused rather than handed to the model.
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


def check_header(samplerate: int, channels: int, frames: int, max_seconds: float, max_decoded_bytes: int) -> None:
    """Refuse, from the header alone, audio the server will not decode (pure; raises AudioInputError)."""
    if samplerate < limits.MIN_INPUT_SAMPLE_RATE:
        raise AudioInputError(
            422, f"sample rate {samplerate} Hz is below {limits.MIN_INPUT_SAMPLE_RATE} Hz; record at 16 kHz"
        )
    if samplerate > limits.MAX_INPUT_SAMPLE_RATE:
        raise AudioInputError(
            422, f"sample rate {samplerate} Hz is above {limits.MAX_INPUT_SAMPLE_RATE} Hz; record at 16-48 kHz"
        )
    if not 1 <= channels <= limits.MAX_INPUT_CHANNELS:
        raise AudioInputError(
            422, f"audio has {channels} channels; send 1 to {limits.MAX_INPUT_CHANNELS} (mono is best)"
        )
    if frames <= 0:
        raise AudioInputError(422, "audio contains no samples")
    duration = frames / samplerate
    if duration > max_seconds:
        raise AudioInputError(
            422, f"audio is {duration:.1f} s long; the limit is {max_seconds:.0f} s (split it or stream it)"
        )
    decoded = frames * channels * 4
    if decoded > max_decoded_bytes:
        raise AudioInputError(
            413, f"audio decodes to {decoded} bytes; the limit is {max_decoded_bytes} (send mono 16 kHz)"
        )


def decode_audio(
    data: bytes, max_bytes: int, max_seconds: float, max_decoded_bytes: int = limits.MAX_DECODED_BYTES
) -> np.ndarray:
    """Bytes of an audio file -> float32 mono samples at 16 kHz in [-1, 1]."""
    check_size(len(data), max_bytes)
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as exc:  # libsndfile parses untrusted bytes; any failure is the file's fault
        raise AudioInputError(422, "could not decode the audio; send WAV, FLAC, OGG or MP3") from exc
    check_header(int(info.samplerate), int(info.channels), int(info.frames), max_seconds, max_decoded_bytes)
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioInputError(422, "could not decode the audio; the file looks truncated or corrupt") from exc
    if samples.shape[0] == 0:
        raise AudioInputError(422, "audio contains no samples")
    if not np.isfinite(samples).all():
        raise AudioInputError(422, "audio contains NaN or infinite samples; send PCM or finite float audio")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    mono = np.clip(mono, -1.0, 1.0)  # float files may exceed full scale; the model expects [-1, 1]
    if rate != limits.SAMPLE_RATE:
        mono = soxr.resample(mono, rate, limits.SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def pcm16_to_float(frame: bytes) -> np.ndarray:
    """16-bit little-endian PCM bytes -> float32 in [-1, 1]."""
    return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
