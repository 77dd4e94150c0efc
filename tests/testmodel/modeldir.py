"""Writing a FunASR SenseVoice model directory: the files ``AutoModel(model=<dir>)`` reads.

Layout (the same as the published ``iic/SenseVoiceSmall`` repository):

* ``config.yaml`` — model class, encoder sizes, frontend, tokenizer;
* ``configuration.json`` — tells FunASR which files are the weights, the config, the tokenizer, the CMVN;
* ``model.pt`` — the state dict;
* ``chn_jpn_yue_eng_ko_spectok.bpe.model`` — sentencepiece tokenizer (25055 pieces);
* ``am.mvn`` — global CMVN in Kaldi nnet text format (560 = 80 mel × 7 stacked frames).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.testmodel.vocab import TOKENIZER_FILENAME, VOCAB_SIZE

N_MELS = 80
LFR_M = 7
LFR_N = 6
INPUT_SIZE = N_MELS * LFR_M  # 560


@dataclass(frozen=True)
class EncoderSize:
    """SenseVoiceEncoderSmall dimensions."""

    output_size: int
    attention_heads: int
    linear_units: int
    num_blocks: int
    tp_blocks: int
    kernel_size: int = 11


FULL_SIZE = EncoderSize(output_size=512, attention_heads=4, linear_units=2048, num_blocks=50, tp_blocks=20)
TINY_SIZE = EncoderSize(output_size=128, attention_heads=4, linear_units=256, num_blocks=3, tp_blocks=1)


def model_config(size: EncoderSize) -> dict[str, Any]:
    """config.yaml contents for a SenseVoice-Small-architecture model of the given encoder size."""
    return {
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {
            "output_size": size.output_size,
            "attention_heads": size.attention_heads,
            "linear_units": size.linear_units,
            "num_blocks": size.num_blocks,
            "tp_blocks": size.tp_blocks,
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": size.kernel_size,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": N_MELS,
            "frame_length": 25,
            "frame_shift": 10,
            "lfr_m": LFR_M,
            "lfr_n": LFR_N,
            "cmvn_file": None,
            "dither": 0.0,  # deterministic features (the stock config uses FunASR's default)
        },
        "dataset": "SenseVoiceCTCDataset",
        "dataset_conf": {
            "index_ds": "IndexDSJsonl",
            "batch_sampler": "EspnetStyleBatchSampler",
            "batch_type": "token",
            "batch_size": 6000,
            "max_token_length": 2000,
            "min_token_length": 10,
            "max_source_length": 2000,
            "min_source_length": 10,
            "max_target_length": 200,
            "min_target_length": 0,
            "shuffle": True,
            "num_workers": 0,
            "sos": 1,
            "eos": 2,
            "IndexDSJsonl": "IndexDSJsonl",
            "retry": 20,
        },
        "train_conf": {
            "accum_grad": 1,
            "grad_clip": 5,
            "max_epoch": 2,
            "keep_nbest_models": 2,
            "avg_nbest_model": 2,
            "avg_keep_nbest_models_type": "loss",
            "log_interval": 1,
            "resume": True,
            "validate_interval": 1000,
            "save_checkpoint_interval": 1000,
        },
        "optim": "adamw",
        "optim_conf": {"lr": 0.0002},
        "scheduler": "warmuplr",
        "scheduler_conf": {"warmup_steps": 10},
        "specaug": None,
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
        "input_size": INPUT_SIZE,
        "vocab_size": VOCAB_SIZE,
    }


CONFIGURATION_JSON: dict[str, Any] = {
    "framework": "pytorch",
    "task": "auto-speech-recognition",
    "model": {"type": "funasr"},
    "pipeline": {"type": "funasr-pipeline"},
    "file_path_metas": {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"bpemodel": TOKENIZER_FILENAME},
        "frontend_conf": {"cmvn_file": "am.mvn"},
    },
}


def write_cmvn(path: Path, means: np.ndarray, stds: np.ndarray) -> Path:
    """Write global CMVN in the Kaldi nnet text format FunASR's ``load_cmvn`` reads."""
    dim = means.shape[0]
    shift = " ".join(f"{-m:.6f}" for m in means)
    scale = " ".join(f"{1.0 / max(s, 1e-3):.6f}" for s in stds)
    path.write_text(
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {scale} ]\n"
        "</Nnet>\n",
        encoding="utf-8",
    )
    return path


def write_model_files(out_dir: Path, size: EncoderSize, extra: dict[str, Any] | None = None) -> None:
    """Write config.yaml and configuration.json (weights, tokenizer and CMVN are written separately)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model_config(size)
    if extra:
        config.update(extra)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (out_dir / "configuration.json").write_text(json.dumps(CONFIGURATION_JSON, indent=2) + "\n")
