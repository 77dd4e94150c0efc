"""Timed transcript segments and their subtitle renderings (SubRip ``srt``, WebVTT ``vtt``).

Pure functions: the OpenAI-compatible route cuts a clip into speech segments with the same VAD
segmenter the streaming path uses (:func:`speech_spans`), decodes each segment, and renders the result
here. Times are seconds from the start of the uploaded clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from senseops_runtime import limits
from senseops_runtime.streaming.segmenter import SegmentClosed, Segmenter, SegmenterConfig

# OpenAI's ``timestamp_granularities[]`` values; SenseVoice's CTC output has no reliable word timing.
SUPPORTED_GRANULARITIES = frozenset({"segment"})
KNOWN_GRANULARITIES = frozenset({"segment", "word"})


@dataclass(frozen=True)
class TimedSegment:
    """One decoded speech segment: ``[start_s, end_s)`` of the clip and its text."""

    start_s: float
    end_s: float
    text: str


class GranularityError(ValueError):
    """A ``timestamp_granularities[]`` value the server cannot honour (the message says what to send)."""


def check_granularities(values: Iterable[str]) -> frozenset[str]:
    """Validate OpenAI's ``timestamp_granularities[]`` values (empty means the default, ``segment``)."""
    asked = frozenset(values)
    unknown = sorted(asked - KNOWN_GRANULARITIES)
    if unknown:
        raise GranularityError(f"timestamp_granularities {unknown} not recognised; send 'segment'")
    if "word" in asked:
        raise GranularityError(
            "word timestamps are not supported by SenseVoice (CTC gives no reliable word timing); "
            "send timestamp_granularities[]=segment"
        )
    return asked or SUPPORTED_GRANULARITIES


def speech_spans(probabilities: Sequence[float], total_samples: int, config: SegmenterConfig) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the confirmed speech segments, given one VAD score per chunk."""
    segmenter = Segmenter(config)
    spans: list[tuple[int, int]] = []
    events = [event for p in probabilities for event in segmenter.feed(p)]
    events += segmenter.finish(total_samples)
    for event in events:
        if isinstance(event, SegmentClosed):
            spans.append((event.start, min(event.end, total_samples)))
    return [(start, end) for start, end in spans if end > start]


def _is_cjk(char: str) -> bool:
    # CJK scripts and full-width punctuation are written without spaces between words.
    return ord(char) >= 0x2E80


def join_texts(texts: Iterable[str]) -> str:
    """Join segment texts into one transcript: a space between words of spaced scripts, none for CJK."""
    out = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if out and not (_is_cjk(out[-1]) or _is_cjk(text[0])):
            out += " "
        out += text
    return out


def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """``HH:MM:SS<marker>mmm`` (hours grow beyond two digits when needed); negative times clamp to 0."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in both formats, so cue text is kept on one line.
    return " ".join(text.split())


def format_srt(segments: Sequence[TimedSegment]) -> str:
    """SubRip: numbered cues ``1``, ``2``… with ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` and the text."""
    cues = [
        f"{i}\n{format_timestamp(s.start_s, ',')} --> {format_timestamp(s.end_s, ',')}\n{_one_line(s.text)}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(cues)


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: '&' and '<' must be escaped, and '-->' may not appear.
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_vtt(segments: Sequence[TimedSegment]) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    cues = [
        f"{format_timestamp(s.start_s, '.')} --> {format_timestamp(s.end_s, '.')}\n{_vtt_escape(s.text)}\n"
        for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def seconds(samples: int) -> float:
    """Samples at the runtime's rate as seconds, rounded to the millisecond."""
    return round(samples / limits.SAMPLE_RATE, 3)
