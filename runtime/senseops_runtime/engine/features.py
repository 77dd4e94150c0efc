"""SenseVoice's frontend in NumPy: 80-bin log-mel fbank → 7-frame stacking every 6 frames → CMVN.

The ONNX backend must not need torch or FunASR at run time, yet must feed the network exactly what
FunASR's ``WavFrontend`` feeds it (``tests/model`` checks the two agree). Both use kaldi-native-fbank
with the same options; stacking (LFR) and CMVN are re-implemented here from the same definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np

SAMPLE_RATE = 16_000
MIN_SAMPLES = 400  # one 25 ms analysis window; shorter clips are zero-padded to it


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


class Frontend:
    """Waveform → network input features, identical to FunASR's WavFrontend for one clip."""

    def __init__(self, config: FrontendConfig, cmvn: np.ndarray | None) -> None:
        self.config = config
        self.cmvn = cmvn

    def fbank(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel filterbank of float samples in [-1, 1] (scaled to 16-bit range as FunASR does)."""
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
        features = self.lfr(self.fbank(audio))
        if self.cmvn is not None:
            features = (features + self.cmvn[0]) * self.cmvn[1]
        return features.astype(np.float32)


def pad_batch(features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad a list of (frames, dim) arrays into (batch, max_frames, dim) plus lengths (int32)."""
    lengths = np.array([f.shape[0] for f in features], dtype=np.int32)
    batch = np.zeros((len(features), int(lengths.max()), features[0].shape[1]), dtype=np.float32)
    for index, feature in enumerate(features):
        batch[index, : feature.shape[0]] = feature
    return batch, lengths
