"""Voice-activity scores from silero-vad (the PyPI ``silero-vad`` package ships the ONNX weights).

One ONNX Runtime session is shared by all streams; each stream keeps its own recurrent state and
64-sample context in a :class:`VadStream`. Scoring runs on a dedicated thread, never on the event loop.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import onnxruntime as ort

from senseops_runtime import limits

CONTEXT_SAMPLES = 64  # silero v5+ prepends the previous chunk's last 64 samples at 16 kHz


def silero_model_path() -> str:
    """Path of the ONNX weights inside the installed silero-vad package."""
    return str(resources.files("silero_vad").joinpath("data", "silero_vad.onnx"))


class SileroVad:
    """The shared model. Thread-safe (ONNX Runtime sessions allow concurrent ``run``)."""

    def __init__(self, model_path: str | None = None) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path or silero_model_path(), opts, providers=["CPUExecutionProvider"])

    def stream(self) -> VadStream:
        """Fresh per-stream state."""
        return VadStream(self)


class VadStream:
    """Scores consecutive 512-sample chunks of one stream."""

    def __init__(self, model: SileroVad) -> None:
        self.model = model
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)
        self.sr = np.array(limits.SAMPLE_RATE, dtype=np.int64)

    def score(self, chunk: np.ndarray) -> float:
        """Speech probability of one chunk of exactly 512 float32 samples."""
        x = np.concatenate([self.context, chunk.reshape(1, -1).astype(np.float32)], axis=1)
        out, self.state = self.model.session.run(None, {"input": x, "state": self.state, "sr": self.sr})
        self.context = x[:, -CONTEXT_SAMPLES:]
        return float(out[0, 0])

    def score_many(self, samples: np.ndarray) -> list[float]:
        """Scores of ``len(samples) // 512`` consecutive chunks (the caller keeps any remainder)."""
        n = len(samples) // limits.VAD_CHUNK_SAMPLES
        step = limits.VAD_CHUNK_SAMPLES
        return [self.score(samples[i * step : (i + 1) * step]) for i in range(n)]
