"""OpenAI's timed transcription formats (srt, vtt, verbose_json segments) through the ``openai`` client.

Two known sentences separated by a pause go to the real runtime with the tiny model; each format must
report two segments with the right text at the right times.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import openai
import pytest

from senseops_common import speech
from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, wav_bytes
from tests.runtime.server import RuntimeServer
from tests.testmodel import KNOWN_SENTENCES

SECOND = next(s for s in KNOWN_SENTENCES if s.text == "please turn up the volume")
LEAD_S, GAP_S, TAIL_S = 0.6, 1.2, 0.8
# VAD pads a segment by 150 ms and scores 32 ms chunks; espeak's own leading/trailing quiet adds a little.
TOLERANCE_S = 0.35


@pytest.fixture(scope="module")
def two_sentences(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float, str]]]:
    """A WAV of ENGLISH, a pause, then SECOND; with the expected (start, end, text) of each."""
    first, second = ENGLISH.synthesize(), SECOND.synthesize()
    audio = np.concatenate(
        [speech.pad_with_silence(first, LEAD_S, GAP_S), speech.pad_with_silence(second, 0.0, TAIL_S)]
    )
    first_end = LEAD_S + len(first) / 16_000
    second_start = first_end + GAP_S
    expected = [
        (LEAD_S, first_end, ENGLISH.text_itn),
        (second_start, second_start + len(second) / 16_000, SECOND.text_itn),
    ]
    path = tmp_path_factory.mktemp("openai") / "two.wav"
    path.write_bytes(wav_bytes(audio))
    return path, expected


def _client(server: RuntimeServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http}/v1", api_key=make_token(), max_retries=0)


def _seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _assert_times(got: list[tuple[float, float, str]], expected: list[tuple[float, float, str]]) -> None:
    assert [text for _, _, text in got] == [text for _, _, text in expected]
    for (start, end, _), (want_start, want_end, _) in zip(got, expected, strict=True):
        assert start == pytest.approx(want_start, abs=TOLERANCE_S)
        assert end == pytest.approx(want_end, abs=TOLERANCE_S)


def test_srt(runtime_server: RuntimeServer, two_sentences: tuple[Path, list[tuple[float, float, str]]]) -> None:
    path, expected = two_sentences
    with path.open("rb") as handle:
        srt = _client(runtime_server).audio.transcriptions.create(
            model="sensevoice-small", file=handle, response_format="srt"
        )
    cues = re.findall(r"(\d+)\n(\S+) --> (\S+)\n(.*)\n", str(srt))
    assert [int(n) for n, *_ in cues] == [1, 2], srt
    assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3}", cues[0][1])
    _assert_times([(_seconds(a), _seconds(b), text) for _, a, b, text in cues], expected)


def test_vtt(runtime_server: RuntimeServer, two_sentences: tuple[Path, list[tuple[float, float, str]]]) -> None:
    path, expected = two_sentences
    with path.open("rb") as handle:
        vtt = str(
            _client(runtime_server).audio.transcriptions.create(
                model="sensevoice-small", file=handle, response_format="vtt"
            )
        )
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(.*)\n", vtt)
    _assert_times([(_seconds(a), _seconds(b), text) for a, b, text in cues], expected)


def test_verbose_json_segments(
    runtime_server: RuntimeServer, two_sentences: tuple[Path, list[tuple[float, float, str]]]
) -> None:
    path, expected = two_sentences
    with path.open("rb") as handle:
        verbose = _client(runtime_server).audio.transcriptions.create(
            model="sensevoice-small",
            file=handle,
            response_format="verbose_json",
            timestamp_granularities=["segment"],
        )
    assert verbose.segments is not None
    _assert_times([(s.start, s.end, s.text) for s in verbose.segments], expected)
    assert [s.id for s in verbose.segments] == [0, 1]
    assert verbose.text == f"{ENGLISH.text_itn} {SECOND.text_itn}"
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(expected[-1][1] + TAIL_S, abs=0.01)


def test_word_timestamps_refused_with_a_sentence(
    runtime_server: RuntimeServer, two_sentences: tuple[Path, list[tuple[float, float, str]]]
) -> None:
    path, _ = two_sentences
    with (
        pytest.raises(openai.BadRequestError, match="word timestamps are not supported") as caught,
        path.open("rb") as handle,
    ):
        _client(runtime_server).audio.transcriptions.create(
            model="sensevoice-small",
            file=handle,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert caught.value.body["param"] == "timestamp_granularities"  # type: ignore[index]


def test_silence_gives_empty_subtitles(runtime_server: RuntimeServer, tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    path.write_bytes(wav_bytes(np.zeros(16_000, np.float32)))
    with path.open("rb") as handle:
        vtt = _client(runtime_server).audio.transcriptions.create(
            model="sensevoice-small", file=handle, response_format="vtt"
        )
    assert str(vtt) == "WEBVTT\n\n"
