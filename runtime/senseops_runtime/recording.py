"""Consented recording: each final segment's WAV and its JSONL record go through the no-loss spool.

Keys follow :mod:`senseops_common.layout`: ``raw/{anchor_id}/{ts}/{segment_id}.wav`` and
``asr/{anchor_id}/{ts}/{writer}-part-{n:06d}.jsonl``. ``ts`` and the segment ids come from the stream
identity (:mod:`senseops_runtime.streaming.identity`), ``writer`` is random per connection, so two
sessions never share a key. Each record is written as its own part (batch size 1) so an acknowledged
final is durable at once; the spool uploads in the background with retries.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from senseops_common.layout import AsrPartWriter, SegmentRecord, check_id, raw_segment_key
from senseops_common.storage import StorageError, open_store
from senseops_common.storage.spool import SpoolWriter
from senseops_runtime.redaction import RULES, Rule, redact

RECORDS_PER_PART = 1
log = logging.getLogger(__name__)
RedactionObserver = Callable[[dict[str, int]], None]


@dataclass(frozen=True)
class SegmentResult:
    """What the session knows about one finished segment."""

    segment_id: str
    start_ms: int
    end_ms: int
    text: str
    lang: str
    emotion: str
    event: str
    confidence: float


class SessionRecording:
    """The recording of one connection of a stream; thread-safe (called from a worker thread per segment)."""

    def __init__(
        self,
        spool: SpoolWriter,
        anchor_id: str,
        ts: str,
        writer_id: str,
        model_name: str,
        model_version: str,
        rules: Sequence[Rule] = RULES,
        on_redact: RedactionObserver | None = None,
    ) -> None:
        self.spool = spool
        self.rules = tuple(rules)
        self.on_redact = on_redact
        self.anchor_id = anchor_id
        self.ts = ts
        self.model_name = model_name
        self.model_version = model_version
        self.parts = AsrPartWriter(
            spool.write, anchor_id, ts, batch_size=RECORDS_PER_PART, writer=check_id(writer_id, "writer id")
        )
        self._lock = threading.Lock()

    def record(self, result: SegmentResult, wav: bytes) -> SegmentRecord:
        """Spool the WAV, then its record (personal data in the text masked); returns once both are durable."""
        text, counts = redact(result.text, self.rules)
        if counts and self.on_redact:
            self.on_redact(counts)
        result = replace(result, text=text)
        key = raw_segment_key(self.anchor_id, self.ts, result.segment_id)
        record = SegmentRecord(
            anchor_id=self.anchor_id,
            session_ts=self.ts,
            segment_id=result.segment_id,
            start_ms=result.start_ms,
            end_ms=result.end_ms,
            text=result.text,
            lang=result.lang,
            emotion=result.emotion,
            event=result.event,
            confidence=result.confidence,
            model_name=self.model_name,
            model_version=self.model_version,
            audio_key=key,
            audio_sha256=hashlib.sha256(wav).hexdigest(),
        )
        with self._lock:
            self.spool.write(key, wav)
            self.parts.add(record)
        return record

    def close(self) -> None:
        """Flush any buffered records (none with one record per part; kept for larger batches)."""
        with self._lock:
            self.parts.flush()


class SpoolRecorder:
    """Opens per-session recordings on one spool (one per process)."""

    def __init__(
        self, spool: SpoolWriter, rules: Sequence[Rule] = RULES, on_redact: RedactionObserver | None = None
    ) -> None:
        self.spool = spool
        self.rules = tuple(rules)
        self.on_redact = on_redact

    @classmethod
    def from_uri(
        cls,
        store_uri: str,
        spool_dir: str,
        rules: Sequence[Rule] = RULES,
        on_redact: RedactionObserver | None = None,
    ) -> SpoolRecorder:
        """Spool into ``spool_dir`` and upload to ``store_uri`` (credentials from the environment)."""
        return cls(SpoolWriter(open_store(store_uri), spool_dir, name="recordings").start(), rules, on_redact)

    def open_session(
        self, anchor_id: str, ts: str, writer_id: str, model_name: str, model_version: str
    ) -> SessionRecording:
        """Start recording one connection of a stream."""
        return SessionRecording(
            self.spool, anchor_id, ts, writer_id, model_name, model_version, self.rules, self.on_redact
        )

    def recorded_segment_ids(self, anchor_id: str, ts: str) -> list[str]:
        """Segment ids already recorded under ``raw/{anchor_id}/{ts}/`` — spooled or in the store.

        Blocking (lists the store). A store that cannot be listed leaves only the spooled ids: the
        trainer's duplicate filter is the second line of defence."""
        prefix = raw_segment_key(anchor_id, ts, "x").rsplit("/", 1)[0] + "/"
        keys = set(self.spool.pending_keys(prefix))
        try:
            keys.update(info.key for info in self.spool.store.list(prefix))
        except StorageError as exc:
            log.warning("could not list %s to skip replayed segments: %s", prefix, exc)
        return sorted(k[len(prefix) : -len(".wav")] for k in keys if k.endswith(".wav"))

    def close(self, timeout_s: float = 10.0) -> None:
        """Try to upload what is pending, then stop (anything left is uploaded after the next start)."""
        self.spool.drain(timeout_s)
        self.spool.close()
