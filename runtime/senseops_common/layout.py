"""Object key layout (seed §6) and the ASR segment record.

================================================  ================================================
key                                               what
================================================  ================================================
raw/{anchor_id}/{ts}/{segment_id}.wav             one finished audio segment of a live session
asr/{anchor_id}/{ts}/{writer}-part-{n:06d}.jsonl  transcripts written by one connection, one line each
models/{name}/{version}/...                       a model artifact (a directory; see storage.verify)
reports/{job}/...                                 evaluation / training reports of a FineTuneJob
================================================  ================================================

``ts`` is the session start in UTC, ``YYYYMMDDTHHMMSSZ`` (sorts by time as text).

Why ``part-{n}.jsonl`` instead of the seed's single ``asr/{anchor_id}/{ts}.jsonl``: object stores cannot
append, and rewriting one growing object per segment would be quadratic and racy. The session's single
writer therefore flushes immutable parts — every ``batch_size`` records and at session end — numbered
0, 1, 2, … Each part is one complete PUT, so a reader that lists the session's prefix sees only whole
parts; reading them in part order gives the records in the order they were produced. A part key is
deterministic (writer + number), so a retried upload (e.g. through the spool) lands on the same part.

``{writer}`` is a random id per writer (one WebSocket connection): two sessions of one anchor that start in
the same second (two streams per subject are allowed; a fast reconnect does it too) share ``{ts}`` but
never a part key. Parts without a writer prefix (``part-{n}.jsonl``, the first layout) are still read.

Segment times ``start_ms``/``end_ms`` are milliseconds from the session start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from senseops_common.storage.base import Store

TS_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_BATCH_SIZE = 100
DEFAULT_MAX_SESSION = timedelta(hours=24)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PART = re.compile(r"^(?:(?P<writer>[A-Za-z0-9][A-Za-z0-9._-]{0,127})-)?part-(?P<n>\d{6,})\.jsonl$")


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is safe as one key segment (letters, digits, ``._-``), else ValueError."""
    if not _ID.match(value):
        raise ValueError(f"{what} {value!r} must be 1-128 of A-Z a-z 0-9 . _ - and start with a letter/digit")
    return value


def format_ts(moment: datetime) -> str:
    """Session timestamp for keys (UTC, second precision)."""
    if moment.tzinfo is None:
        raise ValueError("session start must be timezone-aware")
    return moment.astimezone(UTC).strftime(TS_FORMAT)


def parse_ts(ts: str) -> datetime:
    """Inverse of :func:`format_ts`."""
    return datetime.strptime(ts, TS_FORMAT).replace(tzinfo=UTC)


def raw_segment_key(anchor_id: str, ts: str, segment_id: str) -> str:
    """``raw/{anchor_id}/{ts}/{segment_id}.wav``"""
    parse_ts(ts)
    return f"raw/{check_id(anchor_id, 'anchor_id')}/{ts}/{check_id(segment_id, 'segment_id')}.wav"


def asr_session_prefix(anchor_id: str, ts: str) -> str:
    """``asr/{anchor_id}/{ts}/`` — the parts of one session."""
    parse_ts(ts)
    return f"asr/{check_id(anchor_id, 'anchor_id')}/{ts}/"


def asr_part_key(anchor_id: str, ts: str, part: int, writer: str | None = None) -> str:
    """``asr/{anchor_id}/{ts}/{writer}-part-{n:06d}.jsonl`` (``part-{n:06d}.jsonl`` without a writer)."""
    if part < 0:
        raise ValueError("part number must be >= 0")
    name = f"part-{part:06d}.jsonl" if writer is None else f"{check_id(writer, 'writer')}-part-{part:06d}.jsonl"
    return f"{asr_session_prefix(anchor_id, ts)}{name}"


def model_prefix(name: str, version: str) -> str:
    """``models/{name}/{version}/``"""
    return f"models/{check_id(name, 'model name')}/{check_id(version, 'model version')}/"


def report_key(job: str, name: str) -> str:
    """``reports/{job}/{name}`` (``name`` may contain '/' for sub-folders)."""
    for part in name.split("/"):
        check_id(part, "report name segment")
    return f"reports/{check_id(job, 'job')}/{name}"


@dataclass(frozen=True)
class SegmentRecord:
    """One transcribed segment: one JSON line in an ``asr/`` part."""

    anchor_id: str
    session_ts: str
    segment_id: str
    start_ms: int
    end_ms: int
    text: str
    lang: str
    emotion: str
    event: str
    confidence: float
    model_name: str
    model_version: str
    audio_key: str
    audio_sha256: str

    def __post_init__(self) -> None:
        check_id(self.anchor_id, "anchor_id")
        check_id(self.segment_id, "segment_id")
        parse_ts(self.session_ts)
        if not 0 <= self.start_ms <= self.end_ms:
            raise ValueError(f"segment {self.segment_id}: need 0 <= start_ms <= end_ms")

    @property
    def started_at(self) -> datetime:
        """Absolute start time of the segment."""
        return parse_ts(self.session_ts) + timedelta(milliseconds=self.start_ms)

    def to_json_line(self) -> str:
        """One line of JSONL (UTF-8 text kept readable, keys in field order)."""
        return json.dumps(asdict(self), ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, line: str) -> SegmentRecord:
        """Parse a line written by :meth:`to_json_line`; unknown fields are ignored (forward compat)."""
        raw: dict[str, Any] = json.loads(line)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


class AsrPartWriter:
    """Collects a session's records and writes them as numbered immutable parts.

    ``put`` is ``store.put`` or ``SpoolWriter.write`` (both take ``(key, bytes)``). ``writer`` names this
    writer in the part keys; give every concurrent writer of one ``(anchor_id, ts)`` its own."""

    def __init__(
        self,
        put: Callable[[str, bytes], object],
        anchor_id: str,
        ts: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        writer: str | None = None,
    ) -> None:
        self._put = put
        self.anchor_id = anchor_id
        self.ts = ts
        self.writer = writer
        self.batch_size = batch_size
        self.next_part = 0
        self._buffer: list[SegmentRecord] = []

    def add(self, record: SegmentRecord) -> None:
        """Buffer one record; a full batch is written as the next part."""
        if (record.anchor_id, record.session_ts) != (self.anchor_id, self.ts):
            raise ValueError(f"record {record.segment_id} belongs to another session")
        self._buffer.append(record)
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def flush(self) -> str | None:
        """Write buffered records as one part; return its key (None if nothing was buffered)."""
        if not self._buffer:
            return None
        key = asr_part_key(self.anchor_id, self.ts, self.next_part, self.writer)
        self._put(key, "".join(r.to_json_line() for r in self._buffer).encode())
        self.next_part += 1
        self._buffer = []
        return key


def iter_segment_records(
    store: Store,
    anchor_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    max_session: timedelta = DEFAULT_MAX_SESSION,
) -> Iterator[SegmentRecord]:
    """Yield an anchor's records whose segment start is in ``[since, until)``, session by session
    (oldest first), each writer's parts in order. Sessions that started more than ``max_session`` before
    ``since`` are not read."""
    sessions: dict[str, list[tuple[str, int, str]]] = {}
    for info in store.list(f"asr/{check_id(anchor_id, 'anchor_id')}/"):
        rest = info.key.split("/")
        if len(rest) != 4:
            continue
        ts, name = rest[2], rest[3]
        match = _PART.match(name)
        if not match:
            continue
        try:
            started = parse_ts(ts)
        except ValueError:
            continue
        if until is not None and started >= until:
            continue
        if since is not None and started < since - max_session:
            continue
        sessions.setdefault(ts, []).append((match.group("writer") or "", int(match.group("n")), info.key))
    for ts in sorted(sessions):
        for _, _, key in sorted(sessions[ts]):
            for line in store.get_bytes(key).decode().splitlines():
                if not line.strip():
                    continue
                record = SegmentRecord.from_json(line)
                moment = record.started_at
                if (since is None or moment >= since) and (until is None or moment < until):
                    yield record
