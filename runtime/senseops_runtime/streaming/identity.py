"""Stream and segment identity: who a segment is, from the stream's sample offsets (pure, no I/O).

A *stream* is what the client thinks of as one recording session; it may span several WebSocket
connections (the TypeScript client reconnects and replays audio the server has not acknowledged). The
server names a stream when it starts — ``{ts}-{hex}``, its start time and a random part — and tells the
client in the first message; a client that reconnects sends it back as ``resume`` together with
``start_offset_ms``, the stream position of the first replayed sample.

A segment's id is ``{hex}-{start}-{end}``, its first and last-plus-one sample on the *stream* timeline, so
the same speech replayed after a reconnect gets (nearly) the same identity. A segment of a resumed
connection that mostly overlaps audio the stream already recorded is transcribed and sent (the client
never got that final) but not recorded a second time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from senseops_common.layout import TS_FORMAT, parse_ts

STREAM_HEX_CHARS = 12
# A segment overlapping already-recorded audio by at least this share of its own length is a replay.
REPLAY_OVERLAP_SHARE = 0.5
# A stream can be resumed for this long after it started (a session longer than this starts a new one).
RESUME_MAX_AGE = timedelta(hours=24)
# Clocks differ; a resume token from slightly "in the future" is tolerated.
RESUME_CLOCK_SKEW = timedelta(minutes=5)

_HEX = "[0-9a-f]{" + str(STREAM_HEX_CHARS) + "}"
_STREAM = re.compile(r"^(?P<ts>\d{8}T\d{6}Z)-(?P<hex>" + _HEX + ")$")
_SEGMENT = re.compile("^(?P<hex>" + _HEX + r")-(?P<start>\d{11})-(?P<end>\d{11})$")


@dataclass(frozen=True)
class StreamId:
    """``ts`` names the recording folder (``raw/{anchor}/{ts}/``); ``hex`` tells streams of one second apart."""

    ts: str
    hex: str

    def __str__(self) -> str:
        return f"{self.ts}-{self.hex}"


@dataclass(frozen=True)
class SegmentSpan:
    """A segment's ``[start, end)`` in samples on the stream timeline."""

    start: int
    end: int


def new_stream_id(now: datetime, random_hex: str) -> StreamId:
    """The id of a stream starting at ``now`` (``random_hex``: ``STREAM_HEX_CHARS`` lowercase hex digits)."""
    if not re.fullmatch(_HEX, random_hex):
        raise ValueError(f"random_hex must be {STREAM_HEX_CHARS} lowercase hex digits")
    return StreamId(now.astimezone(UTC).strftime(TS_FORMAT), random_hex)


def parse_resume(value: object, now: datetime) -> StreamId | str:
    """A client's ``resume`` value -> the stream it continues, or a sentence saying what is wrong."""
    if not isinstance(value, str) or not (match := _STREAM.match(value)):
        return "resume must be the stream_id the server sent, e.g. 20260101T000000Z-0123456789ab"
    try:
        started = parse_ts(match["ts"])
    except ValueError:
        return "resume names an impossible start time; send the stream_id the server sent"
    if started > now + RESUME_CLOCK_SKEW:
        return "resume names a stream that starts in the future; send the stream_id the server sent"
    if now - started > RESUME_MAX_AGE:
        return f"stream {value} is older than {RESUME_MAX_AGE.total_seconds() / 3600:.0f} h; start a new one"
    return StreamId(match["ts"], match["hex"])


def segment_id(stream: StreamId, span: SegmentSpan) -> str:
    """``{hex}-{start:011d}-{end:011d}`` (11 digits of 16 kHz samples last 72 days)."""
    return f"{stream.hex}-{span.start:011d}-{span.end:011d}"


def parse_segment_id(value: str) -> tuple[str, SegmentSpan] | None:
    """Inverse of :func:`segment_id`: ``(hex, span)``; None for ids of another form."""
    match = _SEGMENT.match(value)
    if not match:
        return None
    return match["hex"], SegmentSpan(int(match["start"]), int(match["end"]))


def recorded_spans(stream: StreamId, segment_ids: Iterable[str]) -> list[SegmentSpan]:
    """The spans of ``stream`` among recorded segment ids (ids of other streams are ignored)."""
    spans = []
    for value in segment_ids:
        parsed = parse_segment_id(value)
        if parsed is not None and parsed[0] == stream.hex:
            spans.append(parsed[1])
    return sorted(spans, key=lambda s: (s.start, s.end))


def is_replay(span: SegmentSpan, recorded: Iterable[SegmentSpan], share: float = REPLAY_OVERLAP_SHARE) -> bool:
    """Was (most of) ``span`` already recorded? True when recorded spans cover at least ``share`` of it.

    Voice-activity cuts of replayed audio land within a few tens of ms of the first cut, not exactly on
    it (the detector starts without context), hence an overlap share rather than equality.
    """
    length = span.end - span.start
    if length <= 0:
        return False
    covered = 0
    cursor = span.start
    for other in sorted(recorded, key=lambda s: s.start):
        lo, hi = max(cursor, other.start), min(span.end, other.end)
        if hi > lo:
            covered += hi - lo
            cursor = hi
    return covered >= share * length
