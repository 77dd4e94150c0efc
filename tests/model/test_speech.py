"""espeak-ng speech helper: real synthesis, deterministic, 16 kHz mono float32."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from senseops_common import speech


def test_synthesis_is_deterministic_16k_float32() -> None:
    first = speech.synthesize("hello world", speech.ENGLISH)
    second = speech.synthesize("hello world", speech.ENGLISH)
    assert first.dtype == np.float32 and first.ndim == 1
    assert 0.5 < first.size / speech.SAMPLE_RATE < 3.0  # about a second of speech
    assert np.array_equal(first, second)
    assert np.abs(first).max() <= 1.0 and np.abs(first).max() > 0.05


def test_mandarin_and_english_differ() -> None:
    zh = speech.synthesize("今天天气很好", speech.MANDARIN)
    en = speech.synthesize("today the weather is nice", speech.ENGLISH)
    assert zh.size > 8000 and en.size > 8000
    assert not np.array_equal(zh[:8000], en[:8000])


def test_text_that_looks_like_an_option_is_spoken_not_parsed() -> None:
    audio = speech.synthesize("--version", speech.ENGLISH)
    assert audio.size > 4000


def test_empty_text_and_unknown_voice_are_clear_errors() -> None:
    with pytest.raises(speech.SpeechSynthesisError, match="empty"):
        speech.synthesize("   ")
    with pytest.raises(speech.SpeechSynthesisError, match="voice"):
        speech.synthesize("hello", "no-such-voice-xx")


def test_wav_and_pcm_helpers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = speech.synthesize_wav("hello", tmp_path / "a.wav")
    data, rate = soundfile.read(path, dtype="float32")
    info = soundfile.info(path)
    assert rate == 16_000 and info.channels == 1 and info.subtype == "PCM_16"
    padded = speech.pad_with_silence(data, 0.5, 0.25)
    assert padded.size == data.size + 8000 + 4000
    pcm = speech.to_pcm16(np.array([0.0, 1.0, -1.0], dtype=np.float32))
    assert np.frombuffer(pcm, "<i2").tolist() == [0, 32767, -32767]
