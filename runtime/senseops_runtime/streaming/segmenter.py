"""Speech segmentation as a state machine over voice-activity probabilities.

The VAD (silero) scores each 512-sample chunk; :class:`Segmenter` turns the scores into segment events.
It holds no audio and does no I/O, so it is tested with tables and generated score sequences.
Positions are sample indices from the start of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from senseops_runtime import limits


@dataclass(frozen=True)
class SegmenterConfig:
    """Thresholds and durations, in samples (derived from milliseconds at 16 kHz)."""

    chunk_samples: int = limits.VAD_CHUNK_SAMPLES
    threshold: float = limits.VAD_THRESHOLD
    neg_threshold: float = limits.VAD_NEG_THRESHOLD
    min_speech_samples: int = limits.VAD_MIN_SPEECH_MS * 16
    min_silence_samples: int = limits.VAD_MIN_SILENCE_MS * 16
    pad_samples: int = limits.VAD_SPEECH_PAD_MS * 16
    max_segment_samples: int = int(limits.MAX_SEGMENT_S * limits.SAMPLE_RATE)


@dataclass(frozen=True)
class SegmentOpened:
    """Speech started at ``start`` (pre-roll padding included)."""

    start: int


@dataclass(frozen=True)
class SegmentClosed:
    """A confirmed segment ``[start, end)`` ended; ``reason`` is silence, max_length or end_of_stream."""

    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class SegmentDropped:
    """A blip shorter than the minimum speech duration; no final is produced for it."""

    start: int


SegmentEvent = SegmentOpened | SegmentClosed | SegmentDropped


class Segmenter:
    """Feed one VAD probability per chunk with :meth:`feed`; call :meth:`finish` at end of stream."""

    def __init__(self, config: SegmenterConfig) -> None:
        self.config = config
        self.chunks_seen = 0
        self.in_speech = False
        self.start = 0
        self.onset = 0  # first sample of the first chunk scored as speech (without padding)
        self.last_voiced_end = 0  # end sample of the last chunk scored as speech
        self.silence_samples = 0
        self.prev_end = 0  # segments never overlap the previous one

    @property
    def confirmed(self) -> bool:
        """Has the open segment lasted long enough to count as speech?"""
        return self.in_speech and self.last_voiced_end - self.onset >= self.config.min_speech_samples

    def feed(self, probability: float) -> list[SegmentEvent]:
        """Advance by one chunk scored ``probability`` and return what happened."""
        cfg = self.config
        chunk_start = self.chunks_seen * cfg.chunk_samples
        chunk_end = chunk_start + cfg.chunk_samples
        self.chunks_seen += 1
        events: list[SegmentEvent] = []
        if not self.in_speech:
            if probability >= cfg.threshold:
                self.in_speech = True
                self.start = max(self.prev_end, chunk_start - cfg.pad_samples)
                self.onset = chunk_start
                self.last_voiced_end = chunk_end
                self.silence_samples = 0
                events.append(SegmentOpened(self.start))
            return events
        if probability >= cfg.neg_threshold:
            self.last_voiced_end = chunk_end
            self.silence_samples = 0
        else:
            self.silence_samples += cfg.chunk_samples
        if self.silence_samples >= cfg.min_silence_samples:
            events.append(self._close(min(chunk_end, self.last_voiced_end + cfg.pad_samples), "silence"))
        elif chunk_end - self.start >= cfg.max_segment_samples:
            events.append(self._close(chunk_end, "max_length"))
        return events

    def finish(self, total_samples: int) -> list[SegmentEvent]:
        """End of stream: close the open segment (if any) at the last audio received."""
        if not self.in_speech:
            return []
        end = min(total_samples, self.last_voiced_end + self.config.pad_samples)
        return [self._close(max(end, self.start), "end_of_stream")]

    def _close(self, end: int, reason: str) -> SegmentEvent:
        was_confirmed = self.confirmed
        self.in_speech = False
        self.silence_samples = 0
        if not was_confirmed:
            return SegmentDropped(self.start)
        self.prev_end = end
        return SegmentClosed(self.start, end, reason)
