"""Warm-up shared by the backends."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from senseops_runtime.engine.base import DecodeOptions, Transcript


class _Transcribes(Protocol):
    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcript: ...


def warm_up_clip(engine: _Transcribes) -> None:
    """Run a deterministic 1 s tone-plus-noise clip through ``engine.transcribe`` (both ITN modes)."""
    rng = np.random.default_rng(0)
    t = np.arange(16_000, dtype=np.float32) / 16_000
    clip = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    for itn in (False, True):
        engine.transcribe(clip, DecodeOptions(language="auto", itn=itn))
