"""Key layout (seed §6), the segment record, JSONL parts and the time-window reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from senseops_common.layout import (
    AsrPartWriter,
    SegmentRecord,
    asr_part_key,
    format_ts,
    iter_segment_records,
    model_prefix,
    parse_ts,
    raw_segment_key,
    report_key,
)
from tests.storage.backends import Backend

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(("built", "expected"), [
    (lambda: raw_segment_key("a1", "20260102T030405Z", "s-0001"), "raw/a1/20260102T030405Z/s-0001.wav"),
    (lambda: asr_part_key("a1", "20260102T030405Z", 12), "asr/a1/20260102T030405Z/part-000012.jsonl"),
    (lambda: asr_part_key("a1", "20260102T030405Z", 3, "c0ffee"), "asr/a1/20260102T030405Z/c0ffee-part-000003.jsonl"),
    (lambda: model_prefix("sensevoice-small", "v3"), "models/sensevoice-small/v3/"),
    (lambda: report_key("ft-001", "eval/cer.json"), "reports/ft-001/eval/cer.json"),
    (lambda: format_ts(T0), "20260102T030405Z"),
    (lambda: format_ts(datetime(2026, 1, 2, 11, 4, 5, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=8)))), "20260102T110405Z"),
])
def test_keys(built, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert built() == expected


@pytest.mark.parametrize("bad", [
    lambda: raw_segment_key("../a", "20260102T030405Z", "s"),
    lambda: raw_segment_key("a", "2026-01-02", "s"),
    lambda: raw_segment_key("a", "20260102T030405Z", "x/y"),
    lambda: asr_part_key("a", "20260102T030405Z", -1),
    lambda: asr_part_key("a", "20260102T030405Z", 0, "w/x"),
    lambda: report_key("job", "../etc"),
    lambda: format_ts(datetime(2026, 1, 1)),  # naive
])
def test_bad_key_parts_are_refused(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        bad()


def _record(anchor: str, ts: str, n: int, start_ms: int) -> SegmentRecord:
    return SegmentRecord(
        anchor_id=anchor, session_ts=ts, segment_id=f"s{n:04d}", start_ms=start_ms, end_ms=start_ms + 900,
        text=f"第{n}句 hello", lang="zh", emotion="NEUTRAL", event="Speech", confidence=0.91,
        model_name="sensevoice-small", model_version="v3",
        audio_key=raw_segment_key(anchor, ts, f"s{n:04d}"), audio_sha256="ab" * 32,
    )


def test_record_json_round_trip_keeps_text_readable() -> None:
    record = _record("a1", "20260102T030405Z", 1, 1500)
    line = record.to_json_line()
    assert line.endswith("\n") and "第1句" in line
    assert SegmentRecord.from_json(line) == record
    assert SegmentRecord.from_json(line[:-2] + ', "future_field": 1}') == record
    assert record.started_at == T0 + timedelta(milliseconds=1500)
    with pytest.raises(ValueError):
        _record("a1", "20260102T030405Z", 1, -5)


def test_parts_and_window_reader(backend: Backend) -> None:
    s1, s2 = format_ts(T0), format_ts(T0 + timedelta(hours=2))
    writers = [AsrPartWriter(backend.store.put, "a1", s1, batch_size=4),
               AsrPartWriter(backend.store.put, "a1", s2, batch_size=4)]
    expected: list[SegmentRecord] = []
    for writer, ts in zip(writers, (s1, s2), strict=True):
        for n in range(10):
            record = _record("a1", ts, n, n * 60_000)  # one segment per minute
            writer.add(record)
            expected.append(record)
        writer.flush()
        assert writer.flush() is None
    other = AsrPartWriter(backend.store.put, "a10", s1)  # a prefix-sharing anchor must not leak in
    other.add(_record("a10", s1, 0, 0))
    other.flush()
    keys = [i.key for i in backend.store.list(f"asr/a1/{s1}/")]
    assert keys == [asr_part_key("a1", s1, n) for n in range(3)]  # 4 + 4 + 2 records

    assert list(iter_segment_records(backend.store, "a1")) == expected
    window = list(iter_segment_records(backend.store, "a1", since=T0 + timedelta(minutes=5),
                                       until=T0 + timedelta(hours=2, minutes=3)))
    assert window == expected[5:10] + expected[10:13]
    assert list(iter_segment_records(backend.store, "a1", since=T0 + timedelta(days=3))) == []
    with pytest.raises(ValueError):
        writers[0].add(_record("a2", s1, 0, 0))
    assert parse_ts(s2) == T0 + timedelta(hours=2)


def test_two_writers_of_one_anchor_in_the_same_second_keep_both_sessions(backend: Backend) -> None:
    ts = format_ts(T0)
    first = AsrPartWriter(backend.store.put, "a1", ts, batch_size=1, writer="conn1")
    second = AsrPartWriter(backend.store.put, "a1", ts, batch_size=1, writer="conn2")
    one, two = _record("a1", ts, 1, 0), _record("a1", ts, 2, 0)
    first.add(one)
    second.add(two)
    assert sorted(i.key for i in backend.store.list(f"asr/a1/{ts}/")) == [
        f"asr/a1/{ts}/conn1-part-000000.jsonl", f"asr/a1/{ts}/conn2-part-000000.jsonl"
    ]
    assert list(iter_segment_records(backend.store, "a1")) == [one, two]
