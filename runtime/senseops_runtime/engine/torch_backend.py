"""The PyTorch backend: FunASR loads the model directory, we run its modules and decode.

Loading goes through FunASR's real path, ``AutoModel(model=<local dir>, disable_update=True)``: it reads
configuration.json and config.yaml, builds ``SenseVoiceSmall``, its ``WavFrontend`` (with am.mvn) and
loads model.pt. Decoding reuses those modules through :class:`SenseVoiceBestPath` (the same graph the ONNX
export contains), which also yields the CTC posteriors FunASR's ``generate`` does not return.

Features come from the NumPy frontend the ONNX backend uses (the same Kaldi fbank, LFR and CMVN as FunASR's
``WavFrontend``, equal to ~1e-4; ``tests/model`` checks it): FunASR's frame-by-frame frontend costs ~5x
more CPU (13.5 against 2.5 ms per 8 s clip here). On a GPU that CPU work, done in the decode thread for
every clip of a batch, was what limited streams per replica (README, GPU table).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from senseops_runtime.engine.base import DecodeOptions, Transcript
from senseops_runtime.engine.features import MIN_SAMPLES, pad_batch
from senseops_runtime.engine.graph import SenseVoiceBestPath
from senseops_runtime.engine.model_dir import (
    ModelFiles,
    TokenDecoder,
    check_audio,
    query_indices,
    transcripts_from_best_path,
)
from senseops_runtime.engine.warmup import warm_up_clip

log = logging.getLogger(__name__)


class TorchEngine:
    """SenseVoice on PyTorch (CPU or CUDA) through FunASR's AutoModel."""

    backend = "torch"

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        threads: int | None = None,
        name: str | None = None,
        version: str = "local",
    ) -> None:
        from funasr import AutoModel

        files = ModelFiles.open(Path(model_dir))
        if not (files.root / "model.pt").is_file():
            raise FileNotFoundError(f"{files.root} has no model.pt; the torch backend needs the weights")
        threads = threads or torch.get_num_threads()
        self.auto_model = AutoModel(
            model=str(files.root),
            device=device,
            ncpu=threads,
            disable_update=True,
            disable_pbar=True,
            log_level="ERROR",
        )
        self.name = name or files.root.name
        self.version = version
        self.device = str(self.auto_model.kwargs["device"])
        self.threads = threads
        self._model = self.auto_model.model
        self._funasr_frontend = self.auto_model.kwargs["frontend"]
        self._frontend = files.frontend()
        self._graph = SenseVoiceBestPath(self._model).eval()
        self._decoder = TokenDecoder(files.tokenizer)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """NumPy frontend features of one clip (frames, 560): what the model is fed."""
        return self._frontend(check_audio(audio))

    def funasr_features(self, audio: np.ndarray) -> np.ndarray:
        """FunASR's ``WavFrontend`` features of one clip (frames, 560): the reference for tests."""
        samples = check_audio(audio)
        if samples.size < MIN_SAMPLES:
            samples = np.pad(samples, (0, MIN_SAMPLES - samples.size))
        waveform = torch.from_numpy(samples)[None, :]
        with torch.inference_mode():
            feats, _ = self._funasr_frontend(waveform, [waveform.shape[1]])
        return np.asarray(feats[0].numpy(), dtype=np.float32)

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcript:
        """Decode one clip."""
        return self.transcribe_batch([audio], [options])[0]

    def transcribe_batch(self, clips: list[np.ndarray], options: list[DecodeOptions]) -> list[Transcript]:
        """Decode several clips in one padded forward pass."""
        if len(clips) != len(options):
            raise ValueError("transcribe_batch needs one DecodeOptions per clip")
        if not clips:
            return []
        queries = [query_indices(o) for o in options]
        speech, lengths = pad_batch([self.features(clip) for clip in clips])
        device = self.device
        with torch.inference_mode():
            best_log_probs, best_ids, frame_lengths = self._graph(
                torch.from_numpy(speech).to(device),
                torch.from_numpy(lengths).to(device),
                torch.tensor([q[0] for q in queries], dtype=torch.int32, device=device),
                torch.tensor([q[1] for q in queries], dtype=torch.int32, device=device),
            )
        return transcripts_from_best_path(
            self._decoder, best_ids.cpu().numpy(), best_log_probs.cpu().numpy(), frame_lengths.cpu().numpy()
        )

    def funasr_generate(self, audio: np.ndarray, options: DecodeOptions) -> str:
        """FunASR's own ``AutoModel.generate`` on the same model (reference path for tests/benchmarks)."""
        result: list[dict[str, Any]] = self.auto_model.generate(
            input=check_audio(audio), language=options.language, use_itn=options.itn, disable_pbar=True
        )
        return str(result[0]["text"])

    def warm_up(self) -> None:
        """One decode of a short synthetic clip so the first real request does not pay for lazy init."""
        warm_up_clip(self)

