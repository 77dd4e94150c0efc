"""Reviewed transcripts (labels from the streamers' scripts, applied to a real file:// store), the held-out
set, the streamers' sessions (real espeak-ng speech) and their report table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scripts.loop.domain import Streamer
from scripts.loop.review import HELD_OUT_KEY, LIVE_COPY_PREFIX, apply_review, review_part, write_held_out
from scripts.loop.streamers import StreamerReport, build_sessions, format_reports, percentile
from senseops_common.layout import SegmentRecord, iter_segment_records
from senseops_common.speech import espeak_available
from senseops_common.storage import open_store


def record(segment_id: str, text: str, anchor: str = "live-zh-a", start: int = 0, end: int = 2000,
           lang: str = "en") -> SegmentRecord:
    return SegmentRecord(anchor_id=anchor, session_ts="20261129T090000Z", segment_id=segment_id, start_ms=start,
                         end_ms=end, text=text, lang=lang, emotion="NEUTRAL", event="Speech", confidence=0.42,
                         model_name="base", model_version="v1", audio_key=f"raw/{anchor}/x/{segment_id}.wav",
                         audio_sha256="")


def test_review_part_corrects_labelled_lines_and_drops_the_rest() -> None:
    jsonl = record("s1", "直播间").to_json_line() + "\n" + record("s2", "嗯嗯").to_json_line() + \
        record("s3", "主播秒杀开始").to_json_line()
    result = review_part(jsonl, {"s1": "直播间秒杀开始", "s3": "主播秒杀开始"}, {"live-zh-a": "zh"})
    assert (result.kept, result.dropped, result.changed) == (2, 1, 1)
    lines = [json.loads(line) for line in result.text.splitlines()]
    assert [(x["segment_id"], x["text"], x["confidence"], x["lang"]) for x in lines] == [
        ("s1", "直播间秒杀开始", 1.0, "zh"), ("s3", "主播秒杀开始", 1.0, "zh")]
    assert lines[0]["model_version"] == "v1"  # which live model heard it stays on record


def test_apply_review_rewrites_the_index_in_place_and_keeps_the_live_lines(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri() + "/")
    part_a = "asr/live-zh-a/20261129T090000Z/w1-part-000000.jsonl"
    part_b = "asr/live-zh-a/20261129T090000Z/w1-part-000001.jsonl"
    store.put(part_a, record("s1", "直播", start=0, end=1500).to_json_line().encode())
    store.put(part_b, record("s2", "嗯", start=2000, end=2300).to_json_line().encode())
    summary = apply_review(store, {"s1": "直播间秒杀开始"}, {"live-zh-a": "zh"})
    assert (summary.parts, summary.kept, summary.dropped, summary.changed, summary.seconds) == (2, 1, 1, 1, 1.5)
    assert [r.text for r in iter_segment_records(store, "live-zh-a")] == ["直播间秒杀开始"]
    assert not store.exists(part_b)
    assert json.loads(store.get_bytes(LIVE_COPY_PREFIX + part_a))["text"] == "直播"
    # a second pass changes nothing and keeps the first live copy
    apply_review(store, {"s1": "直播间秒杀开始"}, {"live-zh-a": "zh"})
    assert json.loads(store.get_bytes(LIVE_COPY_PREFIX + part_a))["text"] == "直播"


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.95, None), ([0.3], 0.95, 0.3), ([1.0, 2.0, 3.0, 4.0, 5.0], 0.5, 3.0),
    ([float(i) for i in range(101)], 0.95, 95.0), ([0.2, 0.3, 0.4], 0.95, 0.39),
])
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_report_table() -> None:
    busy = StreamerReport("live-zh-a", sessions=3, partials=40, finals=12, final_latencies_s=[0.2, 0.4, 0.3],
                          reconnects=2, errors=["closed 1011: model failed"], error_times=[1.0],
                          labels={"a": "x", "b": "y"})
    rows = format_reports([busy, StreamerReport("live-en-a")]).splitlines()
    assert rows[0].split()[-2:] == ["reconnects", "errors"]
    assert rows[1].split() == ["live-zh-a", "3", "40", "12", "2", "0.30", "s", "0.39", "s", "2", "1"]  # interpolated
    assert rows[2].split() == ["live-en-a", "0", "0", "0", "0", "—", "—", "0", "0"]


needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make debian)")


@needs_espeak
def test_sessions_hold_the_script_lines_where_the_script_says() -> None:
    streamer = Streamer("live-en-a", "en", 160, ("the flash sale starts now", "your coupon is ready",
                                                   "the checkout link ends soon"))
    sessions = build_sessions(streamer, lines_per_session=2)
    assert [len(s.script) for s in sessions] == [2, 1]
    samples = np.frombuffer(sessions[0].pcm, "<i2").astype(np.float32) / 32767
    for line in sessions[0].script:  # speech inside each line, silence in the gaps around it
        inside = samples[line.start_ms * 16:line.end_ms * 16]
        assert np.abs(inside).max() > 0.05
    first, second = sessions[0].script
    assert np.abs(samples[first.end_ms * 16 + 320:second.start_ms * 16 - 320]).max() == 0.0


@needs_espeak
def test_held_out_set_is_a_golden_file_with_true_text_and_stored_audio(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri() + "/")
    count = write_held_out(store, [("zh", "直播间库存不多"), ("en", "your coupon ends soon")], "20261129T080000Z")
    records = [SegmentRecord.from_json(line) for line in store.get_bytes(HELD_OUT_KEY).decode().splitlines()]
    assert count == 2 and [r.text for r in records] == ["直播间库存不多", "your coupon ends soon"]
    assert all(store.stat(r.audio_key).size > 10_000 for r in records)
    assert records[1].start_ms > records[0].end_ms
