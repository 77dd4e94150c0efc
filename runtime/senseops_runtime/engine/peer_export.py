"""Export a SenseVoice model directory in the layout sherpa-onnx reads, for side-by-side comparisons.

sherpa-onnx's SenseVoice recogniser (C++ on ONNX Runtime) takes the graph's inputs by position (features,
lengths, language, text-norm — our ``INPUT_NAMES`` order), reads its **first output** as
(batch, 4 + frames, vocabulary) scores and decodes them greedily itself; it computes the features itself
too (fbank, LFR and CMVN from the metadata below) and maps ids to text with ``tokens.txt``. Our own graph
returns only each frame's best token (``graph.SenseVoiceBestPath``), so this export is a second graph of the
*same weights* with the full log-probabilities as its output: what the peer benchmark runs for sherpa-onnx.

funasr-onnx (PyPI ``funasr-onnx``, FunASR's own ONNX runtime package) reads a model directory with
``model.onnx`` / ``model_quant.onnx`` whose outputs are ``ctc_logits`` (batch, 4 + frames, vocabulary) and
``encoder_out_lens``, plus ``config.yaml``, ``am.mvn`` and the tokenizer under its fixed name;
:func:`export_for_funasr_onnx` writes that layout from the same weights.

Both peers' int8 graphs use the usual recipe of their own export scripts: dynamic int8 of the weight
MatMuls only (``quantize_int8(..., attention="none")``).

    python -m senseops_runtime.engine.peer_export MODEL_DIR OUT_DIR   # model.onnx, model.int8.onnx, tokens.txt
    python -m senseops_runtime.engine.peer_export --funasr-onnx MODEL_DIR OUT_DIR   # model.onnx, model_quant.onnx
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from senseops_runtime.engine.model_dir import LANGUAGE_QUERY, TEXTNORM_QUERY, ModelFiles

SHERPA_FP32 = "model.onnx"
SHERPA_INT8 = "model.int8.onnx"
TOKENS = "tokens.txt"
FUNASR_ONNX_FP32 = "model.onnx"
FUNASR_ONNX_INT8 = "model_quant.onnx"
FUNASR_ONNX_TOKENIZER = "chn_jpn_yue_eng_ko_spectok.bpe.model"  # the name funasr-onnx opens, whatever ours is


@dataclass(frozen=True)
class SherpaExport:
    """Where the sherpa-onnx layout was written."""

    root: Path
    fp32: Path
    int8: Path | None
    tokens: Path


def sherpa_metadata(vocab_size: int, lfr_m: int, lfr_n: int, cmvn: Any) -> dict[str, str]:
    """The metadata keys sherpa-onnx's SenseVoice model reads (values as strings, vectors comma separated)."""
    meta = {
        "model_type": "sense_voice_ctc",
        "vocab_size": str(vocab_size),
        "blank_id": "0",
        "lfr_window_size": str(lfr_m),
        "lfr_window_shift": str(lfr_n),
        # 0: samples are scaled to the int16 range before the fbank, as FunASR's frontend does.
        "normalize_samples": "0",
        "with_itn": str(TEXTNORM_QUERY["withitn"]),
        "without_itn": str(TEXTNORM_QUERY["woitn"]),
        "neg_mean": ",".join(f"{v:.8g}" for v in cmvn[0]),
        "inv_stddev": ",".join(f"{v:.8g}" for v in cmvn[1]),
    }
    for lang in ("auto", "zh", "en", "yue", "ja", "ko"):
        meta[f"lang_{lang}"] = str(LANGUAGE_QUERY[lang])
    return meta


def token_lines(pieces: list[str]) -> list[str]:
    """``tokens.txt``: one ``<piece> <id>`` per line, ids in order."""
    return [f"{piece} {index}" for index, piece in enumerate(pieces)]


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def export_for_sherpa(model_dir: Path, out_dir: Path, int8: bool = True) -> SherpaExport:
    """Write ``model.onnx`` (+ ``model.int8.onnx``) with sherpa-onnx's metadata and ``tokens.txt``."""
    import sentencepiece as spm
    import torch

    from senseops_runtime.engine.graph import ctc_log_probs, export_graph, quantize_int8
    from senseops_runtime.engine.torch_backend import TorchEngine

    class SenseVoiceLogProbs(torch.nn.Module):
        def __init__(self, sensevoice: Any) -> None:
            super().__init__()
            self.sensevoice = sensevoice

        def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, language: torch.Tensor,
                    textnorm: torch.Tensor) -> torch.Tensor:
            return ctc_log_probs(self.sensevoice, speech, speech_lengths, language, textnorm)[0]

    files = ModelFiles.open(Path(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    frontend = files.frontend()
    engine = TorchEngine(files.root, device="cpu")
    fp32 = export_graph(SenseVoiceLogProbs(engine.auto_model.model).eval(), out_dir / SHERPA_FP32, ["logits"],
                        {"logits": {0: "batch", 1: "out_frames"}})
    processor = spm.SentencePieceProcessor(model_file=str(files.tokenizer))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    meta = sherpa_metadata(len(pieces), frontend.config.lfr_m, frontend.config.lfr_n, frontend.cmvn)
    _add_metadata(fp32, meta)
    quantized = None
    if int8:
        quantized = quantize_int8(fp32, out_dir / SHERPA_INT8, attention="none")
        _add_metadata(quantized, meta)
    tokens = out_dir / TOKENS
    tokens.write_text("\n".join(token_lines(pieces)) + "\n", encoding="utf-8")
    return SherpaExport(out_dir, fp32, quantized, tokens)


def export_for_funasr_onnx(model_dir: Path, out_dir: Path, int8: bool = True) -> SherpaExport:
    """Write funasr-onnx's layout: ``model.onnx`` (+ ``model_quant.onnx``) returning raw CTC logits and the
    encoder lengths, with config.yaml, am.mvn and the tokenizer beside them (``tokens`` is the tokenizer)."""
    import torch

    from senseops_runtime.engine.graph import encode, export_graph, quantize_int8
    from senseops_runtime.engine.torch_backend import TorchEngine

    class SenseVoiceLogits(torch.nn.Module):
        """What FunASR's own SenseVoice ONNX export returns: the CTC projection before the softmax."""

        def __init__(self, sensevoice: Any) -> None:
            super().__init__()
            self.sensevoice = sensevoice

        def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, language: torch.Tensor,
                    textnorm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            encoded, lengths = encode(self.sensevoice, speech, speech_lengths, language, textnorm)
            return self.sensevoice.ctc.ctc_lo(encoded), lengths.int()

    files = ModelFiles.open(Path(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "configuration.json"):
        shutil.copy2(files.root / name, out_dir / name)
    if files.cmvn is not None:
        shutil.copy2(files.cmvn, out_dir / "am.mvn")
    tokenizer = out_dir / FUNASR_ONNX_TOKENIZER
    if files.tokenizer.resolve() != tokenizer.resolve():
        shutil.copy2(files.tokenizer, tokenizer)
    engine = TorchEngine(files.root, device="cpu")
    fp32 = export_graph(SenseVoiceLogits(engine.auto_model.model).eval(), out_dir / FUNASR_ONNX_FP32,
                        ["ctc_logits", "encoder_out_lens"],
                        {"ctc_logits": {0: "batch", 1: "out_frames"}, "encoder_out_lens": {0: "batch"}})
    quantized = quantize_int8(fp32, out_dir / FUNASR_ONNX_INT8, attention="none") if int8 else None
    return SherpaExport(out_dir, fp32, quantized, tokenizer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--funasr-onnx", action="store_true", help="write funasr-onnx's layout instead")
    args = parser.parse_args(argv)
    export = export_for_funasr_onnx if args.funasr_onnx else export_for_sherpa
    result = export(args.model_dir, args.out_dir, int8=not args.no_int8)
    print(f"{'funasr-onnx' if args.funasr_onnx else 'sherpa-onnx'} layout in {result.root}: {result.fp32.name}, "
          f"{result.int8.name if result.int8 else '(no int8)'}, {result.tokens.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
