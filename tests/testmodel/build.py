"""Build (once) and cache the tiny trained SenseVoice test model; build a full-size random one on demand.

``ensure_tiny_model()`` returns a model directory that ``funasr.AutoModel(model=<dir>)`` loads and that
transcribes :data:`KNOWN_SENTENCES` exactly. It is cached under
``$SENSEOPS_CACHE/models/tiny-<hash>``, where the hash covers everything that changes the result (the
sentences, the encoder size, the training settings, this builder's version, the espeak-ng, torch and
FunASR versions). Concurrent callers (pytest workers, several test sessions) are serialised with a file
lock and the directory appears atomically (built next to it, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from senseops_common import speech
from senseops_common.cachedir import locked, staged_directory
from tests.testmodel import modeldir, vocab
from tests.testmodel.corpus import KNOWN_SENTENCES, KnownSentence, english_words
from tests.testmodel.train import TrainSettings

log = logging.getLogger(__name__)

BUILDER_VERSION = "2"
METADATA_FILENAME = "senseops_testmodel.json"
DEFAULT_SETTINGS = TrainSettings()


class TestModelBuildError(RuntimeError):
    """The tiny model could not be built or did not learn its sentences."""

    __test__ = False  # not a pytest test class despite the name


def cache_root() -> Path:
    """``$SENSEOPS_CACHE`` (default ``~/.cache/senseops``)."""
    return Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))


def _espeak_version() -> str:
    if not speech.espeak_available():
        return "missing"
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False).stdout


def builder_inputs(
    sentences: tuple[KnownSentence, ...] = KNOWN_SENTENCES,
    size: modeldir.EncoderSize = modeldir.TINY_SIZE,
    settings: TrainSettings = DEFAULT_SETTINGS,
) -> dict[str, Any]:
    """Everything the tiny model depends on (hashed into the cache key)."""
    import funasr
    import torch

    return {
        "builder": BUILDER_VERSION,
        "sentences": [asdict(s) for s in sentences],
        "size": asdict(size),
        "settings": asdict(settings),
        "espeak": _espeak_version().strip(),
        "torch": torch.__version__.split("+")[0],
        "funasr": funasr.__version__,
    }


def tiny_model_key(inputs: dict[str, Any]) -> str:
    """A short stable hash of the builder inputs."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def ensure_tiny_model(
    sentences: tuple[KnownSentence, ...] = KNOWN_SENTENCES,
    settings: TrainSettings = DEFAULT_SETTINGS,
) -> Path:
    """Return the cached tiny trained model directory, building it first when missing (~1–2 min)."""
    inputs = builder_inputs(sentences, modeldir.TINY_SIZE, settings)
    target = cache_root() / "models" / f"tiny-{tiny_model_key(inputs)}"
    if (target / METADATA_FILENAME).exists():
        return target
    with locked(target.with_suffix(".lock")):
        if (target / METADATA_FILENAME).exists():  # another process finished while we waited
            return target
        with staged_directory(target) as staging:
            build_tiny_model(staging, sentences, settings, inputs)
    return target


def build_tiny_model(
    out_dir: Path,
    sentences: tuple[KnownSentence, ...] = KNOWN_SENTENCES,
    settings: TrainSettings = DEFAULT_SETTINGS,
    inputs: dict[str, Any] | None = None,
) -> Path:
    """Build and train the tiny model into ``out_dir`` (no caching). Raises if it did not learn."""
    import torch

    from tests.testmodel import train

    out_dir.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        clean_audio = [s.synthesize() for s in sentences]
        _write_static_files(out_dir, modeldir.TINY_SIZE, english_words(sentences), clean_audio)
        torch.manual_seed(settings.seed)
        model = train.build_sensevoice(modeldir.TINY_SIZE)
        report = train.train_memorise(model, out_dir, sentences, clean_audio, settings)
    finally:
        torch.set_num_threads(previous_threads)
    if not report["learned"]:
        raise TestModelBuildError(
            f"the tiny model did not learn its sentences in {report['steps']} steps: {report['mistakes']}"
        )
    torch.save(model.state_dict(), out_dir / "model.pt")
    metadata = {
        "kind": "senseops-tiny-test-model",
        "inputs": inputs or builder_inputs(sentences, modeldir.TINY_SIZE, settings),
        "training": report,
        "sentences": [asdict(s) for s in sentences],
    }
    (out_dir / METADATA_FILENAME).write_text(json.dumps(metadata, ensure_ascii=False, indent=2) + "\n")
    log.info("tiny model built in %s: %s", out_dir, report)
    return out_dir


def build_fullsize_random(out_dir: Path, seed: int = 0) -> Path:
    """A full-size SenseVoice-Small (≈234 M parameters) with random weights, for benchmarks.

    It computes exactly what the real model computes, so its speed is the real model's speed; it
    transcribes nothing meaningful.
    """
    import torch

    from tests.testmodel import train

    out_dir.mkdir(parents=True, exist_ok=True)
    clips = [s.synthesize() for s in KNOWN_SENTENCES]
    _write_static_files(out_dir, modeldir.FULL_SIZE, english_words(), clips)
    torch.manual_seed(seed)
    model = train.build_sensevoice(modeldir.FULL_SIZE)
    torch.save(model.state_dict(), out_dir / "model.pt")
    parameters = sum(p.numel() for p in model.parameters())
    metadata = {"kind": "senseops-fullsize-random", "seed": seed, "parameters": parameters}
    (out_dir / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
    return out_dir


def _write_static_files(out_dir: Path, size: modeldir.EncoderSize, words: list[str], clips: list[Any]) -> None:
    from tests.testmodel import train

    modeldir.write_model_files(out_dir, size)
    vocab.write_sentencepiece_model(out_dir / vocab.TOKENIZER_FILENAME, words)
    train.write_cmvn_from_audio(out_dir, clips)
