"""What both backends read from a SenseVoice model directory, and the decoded-output assembly.

The query indices below are the rows of ``SenseVoiceSmall.embed`` that FunASR feeds in front of the
features (``lid_dict`` and ``textnorm_dict`` in ``funasr/models/sense_voice/model.py``); the ONNX backend
needs them without importing FunASR.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from senseops_common.sensevoice_tags import parse_sensevoice
from senseops_runtime.engine.base import DecodeOptions, Transcript
from senseops_runtime.engine.ctc import greedy_decode
from senseops_runtime.engine.features import Frontend, FrontendConfig, load_cmvn

LANGUAGE_QUERY = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
TEXTNORM_QUERY = {"withitn": 14, "woitn": 15}
REQUIRED_FILES = ("config.yaml", "configuration.json")
ONNX_FP32 = "model.onnx"  # written by senseops_runtime.engine.export next to the torch weights
ONNX_INT8 = "model_int8.onnx"


class ModelDirError(ValueError):
    """The directory is not a usable SenseVoice model directory (the message says what is missing)."""


@dataclass(frozen=True)
class ModelFiles:
    """Resolved paths inside a model directory."""

    root: Path
    config: dict[str, Any]
    tokenizer: Path
    cmvn: Path | None

    @classmethod
    def open(cls, root: Path) -> ModelFiles:
        """Check the layout and resolve tokenizer/CMVN through configuration.json like FunASR does."""
        root = Path(root)
        if not root.is_dir():
            raise ModelDirError(f"model directory {root} does not exist")
        missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
        if missing:
            raise ModelDirError(f"model directory {root} lacks {', '.join(missing)}")
        config = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8")) or {}
        metas = json.loads((root / "configuration.json").read_text(encoding="utf-8")).get("file_path_metas", {})
        tokenizer_name = metas.get("tokenizer_conf", {}).get("bpemodel", "")
        tokenizer = root / tokenizer_name if tokenizer_name else root / "bpe.model"
        if not tokenizer.is_file():
            raise ModelDirError(f"tokenizer {tokenizer.name} named by configuration.json is not in {root}")
        cmvn_name = metas.get("frontend_conf", {}).get("cmvn_file", "")
        cmvn = root / cmvn_name if cmvn_name and (root / cmvn_name).is_file() else None
        return cls(root=root, config=config, tokenizer=tokenizer, cmvn=cmvn)

    def frontend(self) -> Frontend:
        """The NumPy frontend configured as config.yaml says."""
        config = FrontendConfig.from_config(dict(self.config.get("frontend_conf") or {}))
        return Frontend(config, load_cmvn(self.cmvn) if self.cmvn else None)


def query_indices(options: DecodeOptions) -> tuple[int, int]:
    """(language query row, text-norm query row) for the options; unknown languages raise."""
    if options.language not in LANGUAGE_QUERY:
        known = ", ".join(LANGUAGE_QUERY)
        raise ValueError(f"unsupported language {options.language!r}; use one of: {known}")
    return LANGUAGE_QUERY[options.language], TEXTNORM_QUERY["withitn" if options.itn else "woitn"]


class TokenDecoder:
    """Token ids → text through the model's sentencepiece file (FunASR's SentencepiecesTokenizer)."""

    def __init__(self, tokenizer_path: Path) -> None:
        import sentencepiece

        self._processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_path))

    def decode(self, ids: tuple[int, ...]) -> str:
        """Decode ids (tags included) to the raw SenseVoice string."""
        return str(self._processor.decode(list(ids)))


def transcripts_from_best_path(
    decoder: TokenDecoder, best_ids: np.ndarray, best_log_probs: np.ndarray, lengths: np.ndarray
) -> list[Transcript]:
    """Turn a batch of per-frame best tokens into parsed :class:`Transcript` objects."""
    results: list[Transcript] = []
    for index in range(best_ids.shape[0]):
        greedy = greedy_decode(best_ids[index], best_log_probs[index], int(lengths[index]))
        raw = decoder.decode(greedy.token_ids)
        parsed = parse_sensevoice(raw)
        results.append(
            Transcript(
                text=parsed.text,
                lang=parsed.lang,
                emotion=parsed.emotion,
                event=parsed.event,
                confidence=greedy.confidence,
                raw=raw,
            )
        )
    return results


def check_audio(audio: np.ndarray) -> np.ndarray:
    """Validate one clip (1-D float samples) and return it as contiguous float32."""
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise ValueError(f"audio must be mono 1-D samples, got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("audio is empty")
    if not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got {samples.dtype}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(samples, dtype=np.float32)
