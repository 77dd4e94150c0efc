"""Stream and segment identity (pure): ids, resume validation, and which replayed segments are skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from senseops_runtime import limits
from senseops_runtime.streaming.decisions import CloseVerdict, StreamOptions, parse_options
from senseops_runtime.streaming.identity import (
    SegmentSpan,
    StreamId,
    is_replay,
    new_stream_id,
    parse_resume,
    parse_segment_id,
    recorded_spans,
    segment_id,
)

NOW = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
STREAM = StreamId("20260301T095000Z", "0123456789ab")


def test_new_stream_id_names_the_start_second_and_round_trips_through_resume() -> None:
    stream = new_stream_id(NOW, "00ff00ff00ff")
    assert str(stream) == "20260301T100000Z-00ff00ff00ff"
    assert parse_resume(str(stream), NOW + timedelta(minutes=3)) == stream
    with pytest.raises(ValueError):
        new_stream_id(NOW, "XYZ")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (None, "stream_id the server sent"),
        (42, "stream_id the server sent"),
        ("20260301T095000Z", "stream_id the server sent"),
        ("20260301T095000Z-0123456789AB", "stream_id the server sent"),  # upper case is not ours
        ("20260301T095000Z-0123456789ab/../x", "stream_id the server sent"),
        ("20261301T095000Z-0123456789ab", "impossible start time"),
        ("20260301T110000Z-0123456789ab", "in the future"),
        ("20260227T095000Z-0123456789ab", "older than 24 h"),
    ],
)
def test_bad_resume_values_are_refused_with_a_sentence(value: object, fragment: str) -> None:
    result = parse_resume(value, NOW)
    assert isinstance(result, str) and fragment in result


def test_segment_id_is_the_stream_and_its_sample_span() -> None:
    span = SegmentSpan(16_000, 40_000)
    assert segment_id(STREAM, span) == "0123456789ab-00000016000-00000040000"
    assert parse_segment_id(segment_id(STREAM, span)) == ("0123456789ab", span)
    assert parse_segment_id("0a1b2c3d4e5f-0001") is None  # the earlier per-connection form
    other = StreamId(STREAM.ts, "ffffffffffff")
    ids = [segment_id(STREAM, SegmentSpan(5, 9)), segment_id(other, SegmentSpan(0, 4)), "junk",
           segment_id(STREAM, SegmentSpan(0, 4))]
    assert recorded_spans(STREAM, ids) == [SegmentSpan(0, 4), SegmentSpan(5, 9)]


@pytest.mark.parametrize(
    ("span", "recorded", "replay"),
    [
        pytest.param(SegmentSpan(100, 200), [], False, id="nothing recorded"),
        pytest.param(SegmentSpan(100, 200), [SegmentSpan(100, 200)], True, id="exact replay"),
        pytest.param(SegmentSpan(96, 210), [SegmentSpan(100, 200)], True, id="VAD cut a little wider"),
        pytest.param(SegmentSpan(150, 400), [SegmentSpan(100, 200)], False, id="mostly new speech"),
        pytest.param(SegmentSpan(200, 300), [SegmentSpan(100, 200)], False, id="touching, no overlap"),
        pytest.param(SegmentSpan(100, 300), [SegmentSpan(100, 180), SegmentSpan(180, 230)], True,
                     id="covered by two earlier cuts"),
        pytest.param(SegmentSpan(100, 300), [SegmentSpan(100, 200), SegmentSpan(120, 150)], True,
                     id="overlapping recorded spans are not counted twice (exactly half)"),
        pytest.param(SegmentSpan(100, 301), [SegmentSpan(100, 200), SegmentSpan(120, 150)], False,
                     id="just under half"),
        pytest.param(SegmentSpan(5, 5), [SegmentSpan(0, 10)], False, id="empty span"),
    ],
)
def test_is_replay(span: SegmentSpan, recorded: list[SegmentSpan], replay: bool) -> None:
    assert is_replay(span, recorded) is replay


def test_options_carry_a_valid_resume_and_refuse_a_bad_one_with_1007() -> None:
    good = parse_options('{"resume": "20260301T095000Z-0123456789ab", "start_offset_ms": 4200}', NOW)
    assert good == StreamOptions(start_offset_ms=4200, resume=STREAM)
    bad = parse_options('{"resume": "../../etc"}', NOW)
    assert isinstance(bad, CloseVerdict) and bad.code == limits.CLOSE_INVALID_PAYLOAD
    assert "stream_id the server sent" in bad.reason
