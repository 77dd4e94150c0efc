"""The vectorised NumPy fbank against kaldi-native-fbank (FunASR's own fbank), frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from senseops_runtime.engine.features import Frontend, FrontendConfig, mel_banks, window_function

RNG = np.random.default_rng(7)


def _noise(samples: int, scale: float = 0.1) -> np.ndarray:
    return (RNG.standard_normal(samples) * scale).astype(np.float32)


def _tone_in_silence() -> np.ndarray:
    audio = np.zeros(16_000, dtype=np.float32)
    audio[4_000:12_000] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8_000) / 16_000)
    return audio


@pytest.mark.parametrize(
    ("name", "audio"),
    [
        ("exactly one window", _noise(400)),
        ("one window plus a sample", _noise(401)),
        ("a few frames", _noise(1_000)),
        ("shorter than a window", _noise(250)),
        ("5 s of loud noise", _noise(80_000, 0.8)),
        ("a tone between silences", _tone_in_silence()),
        ("digital silence", np.zeros(3_200, dtype=np.float32)),
    ],
)
@pytest.mark.parametrize("window", ["hamming", "hanning", "povey", "rectangular"])
def test_numpy_fbank_equals_kaldi_native_fbank(name: str, audio: np.ndarray, window: str) -> None:
    frontend = Frontend(FrontendConfig(window=window, dither=0.0), cmvn=None)
    ours, kaldi = frontend.fbank(audio), frontend.fbank_kaldi(audio)
    assert ours.dtype == np.float32 and ours.shape == kaldi.shape, (ours.shape, kaldi.shape)
    # The two differ only by float rounding (kaldi-native-fbank's FFT is float32): equal in the log domain for
    # bins within 40 dB of their frame's loudest bin, and quieter bins (window side lobes, where float32
    # rounding dominates) within 1e-4 of that loudest bin's energy.
    loud = kaldi >= kaldi.max(axis=1, keepdims=True) - np.log(1e4)
    np.testing.assert_allclose(ours[loud], kaldi[loud], atol=2e-3, rtol=1e-4)
    peak = np.exp(kaldi.max(axis=1, keepdims=True))
    excess = np.abs(np.exp(ours) - np.exp(kaldi)) - (1e-4 * peak + 1e-6)
    assert (excess <= 0).all(), f"{int((excess > 0).sum())} quiet bins differ by more than 1e-4 of the frame peak"


def test_dithered_config_uses_the_kaldi_reference() -> None:
    frontend = Frontend(FrontendConfig(dither=1.0), cmvn=None)
    audio = _noise(1_600)
    assert frontend.fbank(audio).shape == frontend.fbank_kaldi(audio).shape


def test_mel_banks_are_kaldi_triangles() -> None:
    banks = mel_banks(80, 512)
    assert banks.shape == (257, 80)
    assert not banks[0].any() and not banks[-1].any()  # DC is below 20 Hz; Kaldi never uses the Nyquist bin
    assert (banks >= 0).all() and (banks <= 1).all()
    assert (banks.sum(axis=0) > 0).all()  # no empty filter (the fbank test above checks the weights themselves)
    peaks = banks.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # filters ascend in frequency


@pytest.mark.parametrize(
    ("kind", "first", "middle"),
    [("hamming", 0.08, 1.0), ("hanning", 0.0, 1.0), ("povey", 0.0, 1.0), ("rectangular", 1.0, 1.0)],
)
def test_window_functions(kind: str, first: float, middle: float) -> None:
    window = window_function(kind, 401)
    assert window[0] == pytest.approx(first) and window[200] == pytest.approx(middle)
    assert window[0] == pytest.approx(window[-1])


def test_unknown_window_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported window 'blackmanharris'"):
        window_function("blackmanharris", 400)
