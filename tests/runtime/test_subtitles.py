"""Subtitle rendering, segment joining and VAD span extraction: pure functions, table and property tests."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senseops_runtime.streaming.segmenter import SegmenterConfig
from senseops_runtime.subtitles import (
    GranularityError,
    TimedSegment,
    check_granularities,
    format_srt,
    format_timestamp,
    format_vtt,
    join_texts,
    speech_spans,
)


@pytest.mark.parametrize(
    ("seconds", "marker", "expected"),
    [
        (0.0, ",", "00:00:00,000"),
        (1.25, ",", "00:00:01,250"),
        (59.9996, ".", "00:01:00.000"),
        (3661.5, ".", "01:01:01.500"),
        (360_000.0, ",", "100:00:00,000"),
        (-0.2, ",", "00:00:00,000"),
    ],
    ids=["zero", "fraction", "rounds-up-a-minute", "hours", "beyond-99-hours", "negative-clamps"],
)
def test_format_timestamp(seconds: float, marker: str, expected: str) -> None:
    assert format_timestamp(seconds, marker) == expected


def test_srt_layout() -> None:
    segments = [TimedSegment(0.35, 2.1, "Hello world."), TimedSegment(3.0, 4.567, "请把音量调大一点。")]
    assert format_srt(segments) == (
        "1\n00:00:00,350 --> 00:00:02,100\nHello world.\n\n2\n00:00:03,000 --> 00:00:04,567\n请把音量调大一点。\n"
    )
    assert format_srt([]) == ""


def test_vtt_layout_and_escaping() -> None:
    segments = [TimedSegment(0.0, 1.5, "a < b & c --> d"), TimedSegment(2.0, 3.0, "two\n\nlines")]
    assert format_vtt(segments) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.500\na &lt; b &amp; c --&gt; d\n"
        "\n"
        "00:00:02.000 --> 00:00:03.000\ntwo lines\n"
    )
    assert format_vtt([]) == "WEBVTT\n\n"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["Hello world.", "Please turn up the volume."], "Hello world. Please turn up the volume."),
        (["今天天气很好。", "欢迎来到直播间！"], "今天天气很好。欢迎来到直播间！"),
        (["Hello world.", "今天天气很好。"], "Hello world.今天天气很好。"),
        (["", "  hi  ", ""], "hi"),
        ([], ""),
    ],
    ids=["english-spaced", "mandarin-unspaced", "mixed", "blank-pieces-skipped", "nothing"],
)
def test_join_texts(texts: list[str], expected: str) -> None:
    assert join_texts(texts) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], {"segment"}), (["segment"], {"segment"}), (["segment", "segment"], {"segment"})],
    ids=["default", "segment", "repeated"],
)
def test_granularities_accepted(values: list[str], expected: set[str]) -> None:
    assert check_granularities(values) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [(["word"], "word timestamps are not supported"), (["segment", "word"], "word"), (["char"], "not recognised")],
    ids=["word", "word-with-segment", "unknown"],
)
def test_granularities_refused_with_a_sentence(values: list[str], message: str) -> None:
    with pytest.raises(GranularityError, match=message):
        check_granularities(values)


CHUNK = 512
CONFIG = SegmenterConfig()


def _scores(*runs: tuple[float, int]) -> list[float]:
    return [p for p, n in runs for _ in range(n)]


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param(_scores((0.0, 40)), [], id="silence"),
        pytest.param(
            _scores((0.0, 10), (0.9, 30), (0.0, 40)),
            # opens at chunk 10 minus 150 ms pre-roll; closes 150 ms after the last voiced chunk
            [(10 * CHUNK - CONFIG.pad_samples, 40 * CHUNK + CONFIG.pad_samples)],
            id="one-utterance",
        ),
        pytest.param(
            _scores((0.0, 10), (0.9, 30), (0.0, 40), (0.9, 20), (0.0, 40)),
            [
                (10 * CHUNK - CONFIG.pad_samples, 40 * CHUNK + CONFIG.pad_samples),
                (80 * CHUNK - CONFIG.pad_samples, 100 * CHUNK + CONFIG.pad_samples),
            ],
            id="two-utterances",
        ),
        pytest.param(_scores((0.0, 10), (0.9, 2), (0.0, 40)), [], id="blip-dropped"),
        pytest.param(
            _scores((0.0, 10), (0.9, 30)),
            [(10 * CHUNK - CONFIG.pad_samples, 40 * CHUNK)],
            id="speech-until-the-end-is-cut-at-the-last-sample",
        ),
    ],
)
def test_speech_spans(scores: list[float], expected: list[tuple[int, int]]) -> None:
    assert speech_spans(scores, len(scores) * CHUNK, CONFIG) == expected


_SRT_CUE = re.compile(r"(\d+)\n(\d+):(\d\d):(\d\d),(\d{3}) --> (\d+):(\d\d):(\d\d),(\d{3})\n(.*)\n")


def _parse_srt(text: str) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of each cue; fails the test on anything that is not a well-formed cue."""
    cues = []
    for i, block in enumerate(text.split("\n\n"), start=1):
        if not block:
            continue
        match = _SRT_CUE.fullmatch(block if block.endswith("\n") else block + "\n")
        assert match, f"malformed cue {block!r}"
        assert int(match[1]) == i
        h1, m1, s1, f1, h2, m2, s2, f2 = (int(match[k]) for k in range(2, 10))
        cues.append(((h1 * 3600 + m1 * 60 + s1) * 1000 + f1, (h2 * 3600 + m2 * 60 + s2) * 1000 + f2, match[10]))
    return cues


segment_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1).filter(
    lambda t: t.split() != []
)


@given(st.lists(st.tuples(st.integers(0, 10**8), st.integers(0, 10**6), segment_text), max_size=8))
def test_srt_round_trips(raw: list[tuple[int, int, str]]) -> None:
    segments = [TimedSegment(start / 1000, (start + length) / 1000, text) for start, length, text in raw]
    parsed = _parse_srt(format_srt(segments))
    assert parsed == [(start, start + length, " ".join(text.split())) for start, length, text in raw]
