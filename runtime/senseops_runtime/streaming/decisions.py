"""Pure decisions of a streaming session: frame checks, options, real-time throttling, partial timing.

Each function takes what was observed and returns a verdict; the session performs it. Close codes are
RFC 6455's: 1003 unsupported data, 1007 invalid payload, 1008 policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from senseops_runtime import limits
from senseops_runtime.engine.base import DecodeOptions
from senseops_runtime.streaming.identity import StreamId, parse_resume

SUPPORTED_LANGUAGES = frozenset({"auto", "zh", "en", "yue", "ja", "ko", "nospeech"})


@dataclass(frozen=True)
class CloseVerdict:
    """Close the socket with ``code`` and a client-facing ``reason`` (at most 123 bytes on the wire)."""

    code: int
    reason: str


@dataclass(frozen=True)
class StreamOptions:
    """Options a client may send as its first text message."""

    decode: DecodeOptions = field(default_factory=DecodeOptions)
    start_offset_ms: int = 0  # timeline offset after a reconnect, so segment times continue
    resume: StreamId | None = None  # the stream a reconnecting client continues (see streaming.identity)


def check_audio_frame(size: int, max_frame_bytes: int) -> CloseVerdict | None:
    """Is a binary frame of ``size`` bytes acceptable 16 kHz s16le mono PCM? None when it is."""
    if size == 0:
        return None  # keep-alive; harmless
    if size > max_frame_bytes:
        return CloseVerdict(
            limits.CLOSE_INVALID_PAYLOAD,
            f"frame of {size} bytes exceeds {max_frame_bytes}; send 100-200 ms frames",
        )
    if size % limits.BYTES_PER_SAMPLE:
        return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, f"frame of {size} bytes is not whole 16-bit samples")
    return None


def parse_options(text: str, now: datetime | None = None) -> StreamOptions | CloseVerdict:
    """Parse the optional first text message, e.g. ``{"language": "zh", "itn": true}``.

    ``{"resume": "<stream_id>", "start_offset_ms": n}`` continues a stream after a reconnect; ``now``
    (default: the clock) bounds how old a resumed stream may be."""
    if len(text.encode()) > limits.MAX_OPTIONS_BYTES:
        return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, "options message too long")
    try:
        data = json.loads(text)
    except ValueError:
        return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, "options message is not JSON")
    if not isinstance(data, dict):
        return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, "options message must be a JSON object")
    known = {"language", "itn", "sample_rate", "format", "start_offset_ms", "resume"}
    unknown = sorted(set(data) - known)
    if unknown:
        return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, f"unknown option(s): {', '.join(unknown)}")
    rate = data.get("sample_rate", limits.SAMPLE_RATE)
    if rate != limits.SAMPLE_RATE:
        return CloseVerdict(limits.CLOSE_UNSUPPORTED_DATA, f"sample_rate {rate} not supported; send 16000 Hz")
    fmt = data.get("format", "s16le")
    if fmt != "s16le":
        return CloseVerdict(limits.CLOSE_UNSUPPORTED_DATA, f"format {fmt!r} not supported; send s16le mono PCM")
    language = data.get("language", "auto")
    if language not in SUPPORTED_LANGUAGES:
        return CloseVerdict(
            limits.CLOSE_INVALID_PAYLOAD,
            f"language {language!r} not one of {', '.join(sorted(SUPPORTED_LANGUAGES))}",
        )
    itn = data.get("itn", True)
    if not isinstance(itn, bool):
        return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, "itn must be true or false")
    offset = data.get("start_offset_ms", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, "start_offset_ms must be a non-negative integer")
    resume = None
    if "resume" in data:
        parsed = parse_resume(data["resume"], now or datetime.now(UTC))
        if isinstance(parsed, str):
            return CloseVerdict(limits.CLOSE_INVALID_PAYLOAD, parsed)
        resume = parsed
    return StreamOptions(decode=DecodeOptions(language=language, itn=itn), start_offset_ms=offset, resume=resume)


def is_eof_message(text: str) -> bool:
    """``{"eof": true}`` ends the stream after the final decode."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("eof") is True and len(data) == 1


@dataclass(frozen=True)
class Accept:
    """Process the frame now."""


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before processing (and reading more): the client is ahead of real time."""

    seconds: float


def throttle(audio_s: float, elapsed_s: float, burst_s: float, close_ahead_s: float) -> Accept | Delay | CloseVerdict:
    """Keep a client at real time: ``audio_s`` received (this frame included) after ``elapsed_s`` wall time.

    A client may run ``burst_s`` ahead (replaying buffered audio after a reconnect); beyond that reading is
    slowed down, and beyond ``close_ahead_s`` the stream is closed.
    """
    ahead = audio_s - elapsed_s
    if ahead > close_ahead_s:
        return CloseVerdict(limits.CLOSE_POLICY, f"sending {ahead:.1f} s faster than real time; stream at 1x")
    if ahead > burst_s:
        return Delay(seconds=ahead - burst_s)
    return Accept()


def partial_due(
    segment_open: bool,
    segment_confirmed: bool,
    partial_in_flight: bool,
    samples_since_last_partial: int,
    interval_samples: int,
    decode_backlog: int = 0,
    max_backlog: int = limits.PARTIAL_MAX_BACKLOG,
) -> bool:
    """Should the open segment be re-decoded for a partial now?

    Only a confirmed speech segment gets partials, at most one in flight per session (a late partial is
    superseded, never queued behind another), and at most one per ``interval_samples`` of new audio.
    Partials are best effort: while ``decode_backlog`` jobs already wait for the model they are skipped,
    so finals are not delayed behind them when the server is busy.
    """
    return (
        segment_open
        and segment_confirmed
        and not partial_in_flight
        and samples_since_last_partial >= interval_samples
        and decode_backlog < max_backlog
    )


def partial_window(segment_samples: int, window_samples: int) -> tuple[int, int]:
    """Which slice ``[start, end)`` of the open segment a partial decodes: its tail, capped in length."""
    return max(0, segment_samples - window_samples), segment_samples
