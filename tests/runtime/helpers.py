"""Audio and request helpers for the runtime tests."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
import soundfile as sf
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from senseops_common import speech
from senseops_runtime.client import StreamOutcome, pcm_frames, stream_pcm
from tests.testmodel import KNOWN_SENTENCES, KnownSentence

ENGLISH = next(s for s in KNOWN_SENTENCES if s.lang == "en")
# The tiny test model drops a repeated character ("今天天气" → "今天气") and doubles one ("直播间" →
# "直播播间") when VAD cuts the segment: CTC needs a blank between equal tokens and the tiny model has
# not learned that robustly. The streaming tests use the Mandarin sentence without that pitfall; the
# real SenseVoice model does not have this limitation.
MANDARIN = next(s for s in KNOWN_SENTENCES if s.text == "请把音量调大一点")


def wav_bytes(samples: np.ndarray, rate: int = 16_000, subtype: str = "PCM_16") -> bytes:
    """Encode mono samples as a WAV file in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def sentence_wav(sentence: KnownSentence) -> bytes:
    """The espeak-ng rendering of a known sentence as WAV bytes."""
    return wav_bytes(sentence.synthesize())


def utterance_pcm(sentence: KnownSentence, before_s: float = 0.6, after_s: float = 1.2) -> bytes:
    """A known sentence padded with silence, as 16 kHz s16le PCM (what the app streams)."""
    return speech.to_pcm16(speech.pad_with_silence(sentence.synthesize(), before_s, after_s))


def stream(url: str, pcm: bytes, token: str | None, realtime: bool = True, **kwargs: Any) -> StreamOutcome:
    """Stream PCM in 100 ms frames and wait for the close."""
    return asyncio.run(stream_pcm(url, pcm_frames(pcm, 100), token=token, realtime=realtime, **kwargs))


def rsa_pair() -> tuple[str, str]:
    """A fresh RSA key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM), for RS256 tokens."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
