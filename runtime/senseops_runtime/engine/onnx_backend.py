"""The ONNX Runtime backend (fp32 or dynamic int8): no torch and no FunASR at run time.

It reads the same model directory (config.yaml, am.mvn, tokenizer) plus ``model.onnx`` or
``model_int8.onnx`` written by :mod:`senseops_runtime.engine.export`, computes features with the NumPy
frontend and runs the exported best-path graph.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from senseops_runtime.engine.base import DecodeOptions, Transcript
from senseops_runtime.engine.features import pad_batch
from senseops_runtime.engine.model_dir import (
    ONNX_FP32,
    ONNX_INT8,
    ModelDirError,
    ModelFiles,
    TokenDecoder,
    check_audio,
    query_indices,
    transcripts_from_best_path,
)
from senseops_runtime.engine.warmup import warm_up_clip


class OnnxEngine:
    """SenseVoice on ONNX Runtime."""

    def __init__(
        self,
        model_dir: Path,
        int8: bool = False,
        device: str = "cpu",
        threads: int | None = None,
        name: str | None = None,
        version: str = "local",
        spin_wait: bool = True,
    ) -> None:
        """``spin_wait``: ONNX Runtime's worker threads busy-wait for work between operators and runs (its
        default). Fastest for one request on an idle machine; a server shares its cores with the network and
        the other streams, where the spinning only burns CPU (and CFS quota under a pod's CPU limit)."""
        import onnxruntime as ort

        files = ModelFiles.open(Path(model_dir))
        onnx_path = files.root / (ONNX_INT8 if int8 else ONNX_FP32)
        if not onnx_path.is_file():
            raise ModelDirError(
                f"{files.root} has no {onnx_path.name}; export it with "
                f"`python -m senseops_runtime.engine export {files.root}`"
            )
        self.backend = "onnx-int8" if int8 else "onnx-fp32"
        self.name = name or files.root.name
        self.version = version
        self.threads = threads or len(os.sched_getaffinity(0))
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = self.threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin_wait:
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.spin_wait = spin_wait
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        self._session = ort.InferenceSession(str(onnx_path), session_options, providers=providers)
        self._frontend = files.frontend()
        self._decoder = TokenDecoder(files.tokenizer)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """NumPy frontend features of one clip (frames, 560)."""
        return self._frontend(check_audio(audio))

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcript:
        """Decode one clip."""
        return self.transcribe_batch([audio], [options])[0]

    def transcribe_batch(self, clips: list[np.ndarray], options: list[DecodeOptions]) -> list[Transcript]:
        """Decode several clips in one padded session run."""
        if len(clips) != len(options):
            raise ValueError("transcribe_batch needs one DecodeOptions per clip")
        if not clips:
            return []
        queries = [query_indices(o) for o in options]
        speech, lengths = pad_batch([self.features(clip) for clip in clips])  # one clip: a view, no copy
        best_log_probs, best_ids, frame_lengths = self._session.run(
            None,
            {
                "speech": speech,
                "speech_lengths": lengths,
                "language": np.array([q[0] for q in queries], dtype=np.int32),
                "textnorm": np.array([q[1] for q in queries], dtype=np.int32),
            },
        )
        return transcripts_from_best_path(self._decoder, best_ids, best_log_probs, frame_lengths)

    def warm_up(self) -> None:
        """One decode of a short synthetic clip (ORT allocates its arenas on the first run)."""
        warm_up_clip(self)
