"""Signals from a segment's audio itself (pure numpy): level, dynamic range, seconds of speech.

A pseudo-label can look perfect (plausible sentence, sane length, high confidence) on audio that holds no
speech at all — noise or hum that the live model hallucinated over. Speech switches on and off syllable
by syllable, so its short-time energy spans a wide range (20–40 dB between vowels and gaps); stationary
noise hardly varies (white noise: under 1 dB over 25 ms frames). :func:`audio_stats` measures that, and
the filter rules in :mod:`senseops_trainer.filters` use the numbers. Nothing here reads files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
FRAME_S = 0.025  # 25 ms analysis frames, 10 ms hop: the usual speech framing (FunASR's fbank uses it too)
HOP_S = 0.010
FLOOR_PERCENTILE = 10.0  # the quietest 10 % of frames: the noise floor
LEVEL_PERCENTILE = 95.0  # the loudest frames: the speech level
ACTIVE_ABOVE_FLOOR_DB = 10.0  # a frame this far above the floor counts as speech
_EPS = 1e-10


@dataclass(frozen=True)
class AudioStats:
    """What the filters need to know about one segment's audio."""

    duration_s: float
    peak_dbfs: float  # loudest frame's RMS level, dB relative to full scale
    floor_dbfs: float  # 10th-percentile frame level
    dynamic_range_db: float  # 95th minus 10th percentile frame level
    speech_s: float  # seconds of frames ≥ ACTIVE_ABOVE_FLOOR_DB over the floor

    @property
    def speech_ratio(self) -> float:
        """Share of the segment that sounds like speech."""
        return self.speech_s / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, float]:
        """Rounded numbers for the segment record."""
        return {k: round(float(v), 3) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AudioStats:
        """Inverse of :meth:`to_json`."""
        return cls(**{k: float(data[k]) for k in cls.__dataclass_fields__})


def frame_levels_db(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS level (dBFS) of each 25 ms frame, 10 ms apart (one frame for shorter clips)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    frame, hop = max(1, round(FRAME_S * rate)), max(1, round(HOP_S * rate))
    if x.size <= frame:
        frames = x[None, :] if x.size else np.zeros((1, 1))
    else:
        count = 1 + (x.size - frame) // hop
        index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
        frames = x[index]
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    levels: np.ndarray = 20.0 * np.log10(rms + _EPS)
    return levels


def audio_stats(samples: np.ndarray, rate: int = SAMPLE_RATE) -> AudioStats:
    """Level, dynamic range and speech seconds of a mono float clip in [-1, 1]."""
    levels = frame_levels_db(samples, rate)
    floor = float(np.percentile(levels, FLOOR_PERCENTILE))
    top = float(np.percentile(levels, LEVEL_PERCENTILE))
    active = int(np.count_nonzero(levels >= floor + ACTIVE_ABOVE_FLOOR_DB))
    return AudioStats(
        duration_s=len(np.asarray(samples).reshape(-1)) / rate,
        peak_dbfs=float(levels.max()),
        floor_dbfs=floor,
        dynamic_range_db=top - floor,
        speech_s=active * HOP_S,
    )
