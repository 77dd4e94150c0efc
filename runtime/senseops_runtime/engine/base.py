"""The contract between the inference server and a model backend.

A backend turns 16 kHz mono float32 audio into a :class:`Transcript`. Backends are *not* assumed to be
thread-safe (FunASR's AutoModel is not): the server calls one engine from a single worker at a time
through its scheduler, so implementations may keep mutable state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class DecodeOptions:
    """Per-request decoding options (from the WebSocket's first text message or the HTTP form)."""

    language: str = "auto"  # auto | zh | en | yue | ja | ko | nospeech
    itn: bool = True  # inverse text normalisation (punctuation, numbers)


@dataclass(frozen=True)
class Transcript:
    """What the model said about one piece of audio, with SenseVoice's tags already parsed off."""

    text: str
    lang: str = ""  # e.g. "zh", "en" ("" when the model emitted no language tag)
    emotion: str = ""  # e.g. "NEUTRAL", "HAPPY"
    event: str = ""  # e.g. "Speech", "BGM"
    confidence: float = 0.0  # 0..1, from the CTC posteriors of the emitted tokens
    raw: str = ""  # the decoded string with tags, for debugging
    extra: dict[str, object] = field(default_factory=dict)


class Engine(Protocol):
    """A loaded model. ``name``/``version`` label metrics and recordings."""

    name: str
    version: str
    backend: str  # "torch" | "onnx-fp32" | "onnx-int8"

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcript:
        """Decode one clip: float32 samples in [-1, 1] at 16 kHz, shape (n,)."""
        ...

    def transcribe_batch(self, clips: list[np.ndarray], options: list[DecodeOptions]) -> list[Transcript]:
        """Decode several clips in one model call where the backend can; same order as the input."""
        ...
