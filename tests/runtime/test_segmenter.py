"""The segmentation state machine: named cases and generated score sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from senseops_runtime.streaming.segmenter import (
    SegmentClosed,
    SegmentDropped,
    Segmenter,
    SegmenterConfig,
    SegmentEvent,
    SegmentOpened,
)

# Small numbers keep the tables readable: chunks of 10 samples.
CFG = SegmenterConfig(
    chunk_samples=10,
    threshold=0.5,
    neg_threshold=0.35,
    min_speech_samples=30,
    min_silence_samples=30,
    pad_samples=10,
    max_segment_samples=150,
)


def run(scores: list[float], total: int | None = None) -> list[SegmentEvent]:
    seg = Segmenter(CFG)
    events: list[SegmentEvent] = []
    for score in scores:
        events += seg.feed(score)
    events += seg.finish(total if total is not None else len(scores) * CFG.chunk_samples)
    return events


def test_silence_only_produces_nothing() -> None:
    assert run([0.0] * 50) == []


def test_one_utterance_is_padded_and_closed_by_silence() -> None:
    events = run([0.0] * 5 + [0.9] * 5 + [0.1] * 5)
    assert events == [SegmentOpened(40), SegmentClosed(40, 110, "silence")]


def test_blip_shorter_than_min_speech_is_dropped() -> None:
    assert run([0.0] * 5 + [0.9] * 2 + [0.0] * 5) == [SegmentOpened(40), SegmentDropped(40)]


def test_hysteresis_keeps_speech_between_thresholds() -> None:
    events = run([0.9] * 3 + [0.4] * 5 + [0.0] * 3)
    assert events == [SegmentOpened(0), SegmentClosed(0, 90, "silence")]


def test_short_pause_does_not_split() -> None:
    events = run([0.9] * 3 + [0.0] * 2 + [0.9] * 3 + [0.0] * 3)
    assert events == [SegmentOpened(0), SegmentClosed(0, 90, "silence")]


def test_long_speech_is_cut_at_max_length_and_continues() -> None:
    events = run([0.9] * 25 + [0.0] * 3)
    assert events == [
        SegmentOpened(0),
        SegmentClosed(0, 150, "max_length"),
        SegmentOpened(150),  # no pre-roll reaching into the previous segment
        SegmentClosed(150, 260, "silence"),
    ]


def test_end_of_stream_closes_open_segment() -> None:
    assert run([0.0] * 2 + [0.9] * 6, total=85) == [SegmentOpened(10), SegmentClosed(10, 85, "end_of_stream")]


def test_confirmed_only_after_min_speech() -> None:
    seg = Segmenter(CFG)
    seg.feed(0.9)
    assert not seg.confirmed
    seg.feed(0.9)
    seg.feed(0.9)
    assert seg.confirmed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=300), st.integers(min_value=0, max_value=9))
def test_segments_are_ordered_disjoint_bounded(scores: list[float], tail: int) -> None:
    total = len(scores) * CFG.chunk_samples + tail
    events = run(scores, total)
    closed = [e for e in events if isinstance(e, SegmentClosed)]
    previous_end = 0
    for event in closed:
        assert previous_end <= event.start < event.end <= total
        assert event.end - event.start <= CFG.max_segment_samples + CFG.pad_samples
        previous_end = event.end
    # Every open is matched by exactly one close or drop, in order.
    depth = 0
    for event in events:
        depth += 1 if isinstance(event, SegmentOpened) else -1
        assert depth in (0, 1)
    assert depth == 0
