"""SenseVoice's frontend in NumPy: 80-bin log-mel fbank → 7-frame stacking every 6 frames → CMVN.

The ONNX backend must not need torch or FunASR at run time, yet must feed the network exactly what
FunASR's ``WavFrontend`` feeds it (``tests/model`` checks the two agree). FunASR computes the fbank with
kaldi-native-fbank; here the same Kaldi definition (framing, DC removal, pre-emphasis, window, power
spectrum, mel triangles, log) is computed for all frames at once with NumPy, which is several times faster
than kaldi-native-fbank's per-frame loop plus the Python list it needs (``Frontend.fbank_kaldi`` keeps that
reference; the tests compare the two). Stacking (LFR) and CMVN are re-implemented from the same definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
from threadpoolctl import ThreadpoolController

SAMPLE_RATE = 16_000
MIN_SAMPLES = 400  # one 25 ms analysis window; shorter clips are zero-padded to it
PREEMPHASIS = 0.97  # Kaldi's default preemph_coeff (FunASR's WavFrontend does not change it)
LOW_FREQ = 20.0  # Kaldi's default mel low_freq (Hz); high_freq 0 means the Nyquist frequency
_FLOAT_EPSILON = float(np.finfo(np.float32).eps)  # Kaldi's log floor for mel energies
_WINDOWS = ("hamming", "hanning", "povey", "rectangular")


@dataclass(frozen=True)
class FrontendConfig:
    """The parts of ``frontend_conf`` in config.yaml that change the features."""

    n_mels: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    window: str = "hamming"
    lfr_m: int = 7
    lfr_n: int = 6
    dither: float = 0.0

    @classmethod
    def from_config(cls, frontend_conf: dict[str, object]) -> FrontendConfig:
        """Read the values FunASR's WavFrontend uses (its defaults where config.yaml is silent)."""
        def number(key: str, default: float) -> float:
            value = frontend_conf.get(key, default)
            return float(value) if isinstance(value, int | float | str) else default

        return cls(
            n_mels=int(number("n_mels", 80)),
            frame_length_ms=number("frame_length", 25.0),
            frame_shift_ms=number("frame_shift", 10.0),
            window=str(frontend_conf.get("window", "hamming")),
            lfr_m=int(number("lfr_m", 1)),
            lfr_n=int(number("lfr_n", 1)),
            dither=number("dither", 1.0),
        )


def load_cmvn(path: Path) -> np.ndarray:
    """Read Kaldi-nnet-format ``am.mvn``: returns ``[shift, scale]`` of shape (2, dim)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    shift: list[float] = []
    scale: list[float] = []
    for index, line in enumerate(lines[:-1]):
        head = line.split()[:1]
        following = lines[index + 1].split()
        if head == ["<AddShift>"] and following[:1] == ["<LearnRateCoef>"]:
            shift = [float(v) for v in following[3:-1]]
        elif head == ["<Rescale>"] and following[:1] == ["<LearnRateCoef>"]:
            scale = [float(v) for v in following[3:-1]]
    if not shift or len(shift) != len(scale):
        raise ValueError(f"{path} is not a CMVN file in Kaldi nnet format (<AddShift>/<Rescale>)")
    return np.array([shift, scale], dtype=np.float32)


def window_function(kind: str, length: int) -> np.ndarray:
    """Kaldi's analysis window of ``length`` samples (float64)."""
    if kind not in _WINDOWS:
        raise ValueError(f"unsupported window {kind!r}; use one of: {', '.join(_WINDOWS)}")
    if kind == "rectangular":
        return np.ones(length)
    cosine = np.cos(2 * np.pi / (length - 1) * np.arange(length)) if length > 1 else np.ones(1)
    if kind == "hamming":
        return np.asarray(0.54 - 0.46 * cosine)
    hann = 0.5 - 0.5 * cosine
    return np.asarray(hann**0.85 if kind == "povey" else hann)


@lru_cache(maxsize=8)
def _window(kind: str, length: int) -> np.ndarray:
    return window_function(kind, length).astype(np.float32)


def _mel(freq: np.ndarray | float) -> np.ndarray:
    return np.asarray(1127.0 * np.log(1.0 + np.asarray(freq) / 700.0))


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries (found once)."""
    return ThreadpoolController()


@lru_cache(maxsize=8)
def mel_banks(n_mels: int, fft_size: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Kaldi's triangular mel filters as a (fft_size // 2 + 1, n_mels) float32 matrix (Nyquist bin unused)."""
    mel_low, mel_high = _mel(LOW_FREQ), _mel(sample_rate / 2)
    delta = (mel_high - mel_low) / (n_mels + 1)
    left = mel_low + np.arange(n_mels) * delta
    center, right = left + delta, left + 2 * delta
    mels = _mel(np.arange(fft_size // 2) * sample_rate / fft_size)[:, None]
    rising = (mels - left) / (center - left)
    falling = (right - mels) / (right - center)
    weights = np.where((mels > left) & (mels < right), np.where(mels <= center, rising, falling), 0.0)
    out = np.zeros((fft_size // 2 + 1, n_mels), dtype=np.float32)
    out[: fft_size // 2] = weights
    return out


class Frontend:
    """Waveform → network input features, identical to FunASR's WavFrontend for one clip."""

    def __init__(self, config: FrontendConfig, cmvn: np.ndarray | None) -> None:
        self.config = config
        self.cmvn = cmvn

    def fbank(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel filterbank of float samples in [-1, 1] (scaled to 16-bit range as FunASR does).

        Kaldi's fbank (snip_edges, no energy, power spectrum, log) for all frames at once; equal to
        :meth:`fbank_kaldi` within float rounding. Dithered configs use the Kaldi reference.
        """
        config = self.config
        if config.dither != 0.0 or config.window not in _WINDOWS:
            return self.fbank_kaldi(audio)
        length = min(int(SAMPLE_RATE * config.frame_length_ms / 1000), audio.size)
        shift = int(SAMPLE_RATE * config.frame_shift_ms / 1000)
        if length <= 0 or audio.size < length:
            return np.zeros((0, config.n_mels), dtype=np.float32)
        frames = 1 + (audio.size - length) // shift
        samples = np.asarray(audio, dtype=np.float32) * np.float32(32768.0)
        windows = np.lib.stride_tricks.as_strided(
            samples, shape=(frames, length), strides=(samples.strides[0] * shift, samples.strides[0]), writeable=False
        )
        # DC removal then pre-emphasis, in one pass: y[i] = (x[i] - m) - k (x[i-1] - m), y[0] = (1 - k)(x[0] - m).
        mean = windows.mean(axis=1, keepdims=True, dtype=np.float32)
        emphasised = np.empty((frames, length), dtype=np.float32)
        np.subtract(windows[:, 1:], np.float32(PREEMPHASIS) * windows[:, :-1], out=emphasised[:, 1:])
        emphasised[:, 1:] -= np.float32(1.0 - PREEMPHASIS) * mean
        emphasised[:, :1] = np.float32(1.0 - PREEMPHASIS) * (windows[:, :1] - mean)
        emphasised *= _window(config.window, length)
        fft_size = 1 << max(length - 1, 1).bit_length()
        spectrum = np.fft.rfft(emphasised, n=fft_size, axis=1)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        energies = power.astype(np.float32, copy=False) @ mel_banks(config.n_mels, fft_size)
        return np.log(np.maximum(energies, _FLOAT_EPSILON)).astype(np.float32)

    def fbank_kaldi(self, audio: np.ndarray) -> np.ndarray:
        """The same filterbank through kaldi-native-fbank, frame by frame (FunASR's own path; the reference)."""
        config = self.config
        options = knf.FbankOptions()
        options.frame_opts.samp_freq = float(SAMPLE_RATE)
        options.frame_opts.frame_length_ms = min(config.frame_length_ms, len(audio) / SAMPLE_RATE * 1000)
        options.frame_opts.frame_shift_ms = config.frame_shift_ms
        options.frame_opts.dither = config.dither
        options.frame_opts.snip_edges = True
        options.frame_opts.window_type = config.window
        options.mel_opts.num_bins = config.n_mels
        options.energy_floor = 0.0
        computer = knf.OnlineFbank(options)
        computer.accept_waveform(float(SAMPLE_RATE), (audio * 32768.0).astype(np.float32).tolist())
        computer.input_finished()
        frames = computer.num_frames_ready
        if frames == 0:
            return np.zeros((0, config.n_mels), dtype=np.float32)
        return np.stack([computer.get_frame(i) for i in range(frames)]).astype(np.float32)

    def lfr(self, fbank: np.ndarray) -> np.ndarray:
        """Stack ``lfr_m`` frames every ``lfr_n`` frames (left-padded with the first frame)."""
        m, n = self.config.lfr_m, self.config.lfr_n
        if m == 1 and n == 1:
            return fbank
        frames = fbank.shape[0]
        out_frames = int(np.ceil(frames / n))
        padded = np.vstack([np.repeat(fbank[:1], (m - 1) // 2, axis=0), fbank])
        rows = np.arange(out_frames)[:, None] * n + np.arange(m)[None, :]
        rows = np.minimum(rows, padded.shape[0] - 1)  # past the end: repeat the last frame
        return np.asarray(padded[rows].reshape(out_frames, m * fbank.shape[1]), dtype=np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Features for one clip: (frames, n_mels * lfr_m) float32."""
        if audio.size < MIN_SAMPLES:
            audio = np.pad(audio, (0, MIN_SAMPLES - audio.size))
        # One BLAS thread for the mel matrix product: OpenBLAS's own threads keep spinning after a call and take
        # the cores ONNX Runtime's threads need next (full-size int8, 5 s clips: RTF 0.035 with them, 0.024 without).
        # The limit is process-wide: with several decode workers the calls overlap and one may restore another's
        # "original" of 1, so such a server settles at one BLAS thread, which is what it wants anyway.
        with _blas().limit(limits=1, user_api="blas"):
            features = self.lfr(self.fbank(audio))
        if self.cmvn is not None:
            features = (features + self.cmvn[0]) * self.cmvn[1]
        return features.astype(np.float32)


def pad_batch(features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad a list of (frames, dim) arrays into (batch, max_frames, dim) plus lengths (int32).

    A single contiguous float32 array is returned as a (1, frames, dim) view (nothing to pad, nothing copied).
    """
    lengths = np.array([f.shape[0] for f in features], dtype=np.int32)
    if len(features) == 1 and features[0].dtype == np.float32 and features[0].flags.c_contiguous:
        return features[0][None], lengths
    batch = np.zeros((len(features), int(lengths.max()), features[0].shape[1]), dtype=np.float32)
    for index, feature in enumerate(features):
        batch[index, : feature.shape[0]] = feature
    return batch, lengths
