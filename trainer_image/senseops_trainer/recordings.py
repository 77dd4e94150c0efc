"""Recorded segments in the seed's storage layout, seen as trainer :class:`Segment` objects.

The key layout and the record format belong to :mod:`senseops_common.layout` (the runtime's recorder
writes with it); this module only maps its :class:`SegmentRecord` onto :class:`Segment` and back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from senseops_common.layout import SegmentRecord, iter_segment_records
from senseops_common.storage import StoreBase as Store
from senseops_trainer.segments import Segment


def parse_time(value: str) -> datetime:
    """An ISO-8601 time (``2026-03-01T00:00:00Z``) or a session timestamp (``20260301T000000Z``), UTC."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def segment_from_record(record: SegmentRecord) -> Segment:
    """The trainer's view of one recorded segment."""
    return Segment(
        segment_id=record.segment_id,
        anchor_id=record.anchor_id,
        session_ts=record.session_ts,
        audio_key=record.audio_key,
        text=record.text,
        start_ms=record.start_ms,
        end_ms=record.end_ms,
        lang=record.lang,
        confidence=record.confidence,
        emotion=record.emotion,
        event=record.event,
        model_version=record.model_version,
        recorded_at=record.started_at.timestamp(),
        extra={"audio_sha256": record.audio_sha256, "model_name": record.model_name},
    )


def read_selection(
    store: Store, anchor_ids: Iterable[str], since: datetime | None, until: datetime | None
) -> list[Segment]:
    """Every segment of the given anchors that started in [since, until) (open ends allowed)."""
    segments: list[Segment] = []
    for anchor in anchor_ids:
        segments += [segment_from_record(r) for r in iter_segment_records(store, anchor, since, until)]
    return segments


def read_golden(store: Store, key: str) -> list[Segment]:
    """The human-verified segments listed in ``key`` (JSON lines of segment records, corrected text)."""
    text = store.get_bytes(key).decode("utf-8")
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(segment_from_record(SegmentRecord.from_json(line)))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{store.uri_for(key)} line {number} is not a segment record: {exc}") from exc
    return out


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    """JSON lines (UTF-8, one object per line)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
