"""Table tests of the pure streaming decisions: frames, options, throttling, partial timing."""

from __future__ import annotations

import pytest

from senseops_runtime.engine.base import DecodeOptions
from senseops_runtime.streaming.decisions import (
    Accept,
    CloseVerdict,
    Delay,
    StreamOptions,
    check_audio_frame,
    is_eof_message,
    parse_options,
    partial_due,
    partial_window,
    throttle,
)


@pytest.mark.parametrize(
    ("size", "code"),
    [(0, None), (2, None), (3200, None), (6400, None), (64_000, None), (1, 1007), (3201, 1007), (64_002, 1007)],
)
def test_check_audio_frame(size: int, code: int | None) -> None:
    verdict = check_audio_frame(size, 64_000)
    assert (verdict.code if verdict else None) == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", StreamOptions()),
        ('{"language": "zh", "itn": false}', StreamOptions(DecodeOptions("zh", False))),
        ('{"sample_rate": 16000, "format": "s16le"}', StreamOptions()),
        ('{"start_offset_ms": 1500}', StreamOptions(start_offset_ms=1500)),
        ('{"sample_rate": 8000}', CloseVerdict(1003, "sample_rate 8000 not supported; send 16000 Hz")),
        ('{"format": "f32le"}', 1003),
        ('{"language": "klingon"}', 1007),
        ('{"itn": "yes"}', 1007),
        ('{"start_offset_ms": -1}', 1007),
        ('{"start_offset_ms": true}', 1007),
        ('{"colour": "blue"}', 1007),
        ("[1, 2]", 1007),
        ("not json", 1007),
        ("{" + '"language": "zh",' * 400 + "}", 1007),
    ],
)
def test_parse_options(text: str, expected: object) -> None:
    result = parse_options(text)
    if isinstance(expected, int):
        assert isinstance(result, CloseVerdict) and result.code == expected, result
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("text", "eof"),
    [
        ('{"eof": true}', True),
        ('{"eof": false}', False),
        ('{"eof": 1}', False),
        ("eof", False),
        ('{"eof": true, "x": 1}', False),
    ],
)
def test_is_eof_message(text: str, eof: bool) -> None:
    assert is_eof_message(text) is eof


@pytest.mark.parametrize(
    ("audio_s", "elapsed_s", "expected"),
    [
        (1.0, 1.0, Accept()),
        (1.0, 5.0, Accept()),  # behind real time (network stall): fine
        (10.5, 1.0, Accept()),  # within the replay burst
        (15.0, 1.0, Delay(4.0)),
        (30.0, 1.0, Delay(19.0)),
        (31.5, 1.0, CloseVerdict),
    ],
)
def test_throttle(audio_s: float, elapsed_s: float, expected: object) -> None:
    verdict = throttle(audio_s, elapsed_s, burst_s=10.0, close_ahead_s=30.0)
    if expected is CloseVerdict:
        assert isinstance(verdict, CloseVerdict) and verdict.code == 1008
    elif isinstance(expected, Delay):
        assert isinstance(verdict, Delay) and verdict.seconds == pytest.approx(expected.seconds)
    else:
        assert verdict == expected


def test_partial_skipped_while_decodes_are_backed_up() -> None:
    assert partial_due(True, True, False, 9000, 4800, decode_backlog=3, max_backlog=4)
    assert not partial_due(True, True, False, 9000, 4800, decode_backlog=4, max_backlog=4)


@pytest.mark.parametrize(
    ("open_", "confirmed", "in_flight", "since", "due"),
    [
        (True, True, False, 4800, True),
        (True, True, False, 9000, True),
        (True, True, False, 4799, False),
        (True, True, True, 9000, False),  # one partial in flight per session
        (True, False, False, 9000, False),  # not yet confirmed speech
        (False, True, False, 9000, False),
    ],
)
def test_partial_due(open_: bool, confirmed: bool, in_flight: bool, since: int, due: bool) -> None:
    assert partial_due(open_, confirmed, in_flight, since, 4800) is due


@pytest.mark.parametrize(
    ("length", "window", "expected"), [(1000, 5000, (0, 1000)), (5000, 5000, (0, 5000)), (9000, 5000, (4000, 9000))]
)
def test_partial_window(length: int, window: int, expected: tuple[int, int]) -> None:
    assert partial_window(length, window) == expected
