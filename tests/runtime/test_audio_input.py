"""Upload decoding refuses hostile audio before it reaches the model (no server needed)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from senseops_runtime import limits
from senseops_runtime.audio_input import AudioInputError, check_header, decode_audio

MAX_BYTES = 10_000_000
MAX_SECONDS = 60.0


def _wav(samples: np.ndarray, rate: int = 16_000, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _with_header(wav: bytes, rate: int | None = None, channels: int | None = None) -> bytes:
    """Forge the fmt chunk of a canonical 44-byte-header WAV."""
    data = bytearray(wav)
    if channels is not None:
        data[22:24] = struct.pack("<H", channels)
    if rate is not None:
        data[24:28] = struct.pack("<I", rate)
        data[28:32] = struct.pack("<I", rate * 2)
    return bytes(data)


SPEECHLIKE = (0.1 * np.sin(np.arange(16_000) / 5)).astype(np.float32)


def test_plain_wav_decodes_to_16k_mono() -> None:
    clip = decode_audio(_wav(np.stack([SPEECHLIKE, SPEECHLIKE], axis=1), rate=48_000), MAX_BYTES, MAX_SECONDS)
    assert clip.dtype == np.float32 and abs(len(clip) - 16_000 // 3) <= 2


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        pytest.param(_wav(np.array([0.1, np.nan, 0.2] * 100, np.float32), subtype="FLOAT"), 422, "NaN",
                     id="NaN samples"),
        pytest.param(_wav(np.array([0.1, np.inf, -np.inf] * 100, np.float32), subtype="FLOAT"), 422, "infinite",
                     id="Inf samples"),
        pytest.param(_with_header(_wav(SPEECHLIKE), rate=2_000_000_000), 422, "above 384000 Hz",
                     id="absurd sample rate"),
        pytest.param(_with_header(_wav(np.zeros(64 * 100, np.float32)), channels=64), 422, "64 channels",
                     id="absurd channel count"),
        pytest.param(b"RIFF\xff\xff\xff\xffWAVEfmt " + b"\x00" * 40, 422, "could not decode", id="garbage header"),
    ],
)
def test_hostile_audio_is_a_4xx_with_a_sentence(data: bytes, status: int, fragment: str) -> None:
    with pytest.raises(AudioInputError) as caught:
        decode_audio(data, MAX_BYTES, MAX_SECONDS)
    assert caught.value.status == status and fragment in caught.value.message


def test_decoded_size_is_refused_from_the_header_before_decoding() -> None:
    stereo = np.zeros((16_000, 2), np.float32)
    data = _wav(stereo)  # 64 KB of PCM_16 decodes to 128 KB of float32
    with pytest.raises(AudioInputError) as caught:
        decode_audio(data, MAX_BYTES, MAX_SECONDS, max_decoded_bytes=100_000)
    assert caught.value.status == 413 and "decodes to 128000 bytes" in caught.value.message
    assert len(decode_audio(data, MAX_BYTES, MAX_SECONDS, max_decoded_bytes=128_000)) == 16_000


def test_float_audio_beyond_full_scale_is_clipped_not_refused() -> None:
    clip = decode_audio(_wav(np.full(1_600, 3.0, np.float32), subtype="FLOAT"), MAX_BYTES, MAX_SECONDS)
    assert float(clip.max()) == 1.0


@pytest.mark.parametrize(
    ("rate", "channels", "frames", "fragment"),
    [
        (7_999, 1, 100, "below 8000 Hz"),
        (limits.MAX_INPUT_SAMPLE_RATE + 1, 1, 100, "above"),
        (16_000, 0, 100, "0 channels"),
        (16_000, limits.MAX_INPUT_CHANNELS + 1, 100, "channels"),
        (16_000, 1, 0, "no samples"),
        (16_000, 1, 16_000 * 61, "the limit is 60 s"),
    ],
)
def test_check_header_table(rate: int, channels: int, frames: int, fragment: str) -> None:
    with pytest.raises(AudioInputError, match=fragment):
        check_header(rate, channels, frames, MAX_SECONDS, limits.MAX_DECODED_BYTES)
