"""Finals of concurrent streams equal an offline decode of the same samples.

Several real-time streams share one decode worker, so their partials are batched together and their
finals queue behind partial batches; none of that may change a final. Each final's segment
(``start_ms``..``end_ms`` of the audio the client sent) is decoded again here, alone, by the same model
and backend as the server's, and the texts must be equal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from senseops_common import speech
from senseops_runtime.audio_input import pcm16_to_float
from senseops_runtime.client import StreamOutcome, pcm_frames, stream_pcm
from senseops_runtime.engine.base import DecodeOptions, Engine
from senseops_runtime.engine.factory import load_engine
from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, MANDARIN
from tests.runtime.server import RuntimeServer
from tests.testmodel import KNOWN_SENTENCES

OPTIONS = {"language": "auto", "itn": False}


@pytest.fixture(scope="module")
def offline_engine(tiny_model_dir: Path) -> Engine:
    """The server's model and backend (torch), loaded in the test process."""
    return load_engine(tiny_model_dir, "torch", warm_up=False)


def two_utterances(first: int, second: int) -> bytes:
    """Two known sentences with silence around and between them (two segments), as s16le PCM."""
    clips = [KNOWN_SENTENCES[index].synthesize() for index in (first, second)]
    return speech.to_pcm16(
        np.concatenate([speech.pad_with_silence(clips[0], 0.5, 1.0), speech.pad_with_silence(clips[1], 0.3, 1.2)])
    )


async def run_streams(url: str, audio: list[bytes]) -> list[StreamOutcome]:
    return await asyncio.gather(
        *(stream_pcm(url, pcm_frames(pcm, 100), token=make_token(), options=OPTIONS, realtime=True) for pcm in audio)
    )


def test_finals_of_concurrent_streams_equal_offline_decodes(
    runtime_server: RuntimeServer, offline_engine: Engine
) -> None:
    english = KNOWN_SENTENCES.index(ENGLISH)
    mandarin = KNOWN_SENTENCES.index(MANDARIN)
    audio = [two_utterances(english, mandarin), two_utterances(mandarin, english), two_utterances(english, english)]
    outcomes = asyncio.run(run_streams(runtime_server.ws, audio))
    checked = 0
    for pcm, outcome in zip(audio, outcomes, strict=True):
        assert outcome.close_code == 1000, outcome.close_reason
        assert len(outcome.finals) == 2, outcome.finals
        assert outcome.partials, "expected partials while speaking"
        for _, final in outcome.finals:
            start, end = final["start_ms"] * 16, final["end_ms"] * 16  # 16 samples per ms
            offline = offline_engine.transcribe(
                pcm16_to_float(pcm[start * 2 : end * 2]), DecodeOptions(language="auto", itn=False)
            )
            assert (final["final"], final["lang"]) == (offline.text, offline.lang), (start, end)
            checked += 1
    assert checked == 6
    # The known text comes back too (the offline decode is not merely equally wrong). Only the English
    # sentence is checked: the tiny model sometimes drops a character of a Mandarin one cut by the VAD.
    assert [m["final"] for _, m in outcomes[2].finals] == [ENGLISH.text, ENGLISH.text]
