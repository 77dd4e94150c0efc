"""Building and briefly training a SenseVoice-architecture model in-process.

The model class, frontend, tokenizer wrapper, loss and inference are FunASR's own (``SenseVoiceSmall``
from ``funasr.models.sense_voice``); only the loop around them is ours, because a tiny model that has to
memorise six utterances needs neither the data pipeline nor checkpointing of ``funasr.bin.train``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from senseops_common import speech
from tests.testmodel import modeldir, vocab
from tests.testmodel.corpus import KnownSentence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Knobs of the memorisation run; all of them are part of the cache key."""

    max_steps: int = 900
    batch_size: int = 10
    learning_rate: float = 2e-3
    variants_per_sentence: int = 6  # copies with random leading/trailing silence and gain (+ check_clips)
    decay_steps: int = 450  # learning rate falls linearly to 10 % over this many steps
    max_padding_s: float = 1.2  # VAD segments and streaming windows carry up to about this much silence
    background_clips: int = 3  # silence / noise clips taught as <|nospeech|> with no words
    check_every: int = 25
    confirm_checks: int = 2  # consecutive error-free checks before stopping (a margin for VAD cuts)
    seed: int = 1234
    threads: int = 1


def build_sensevoice(size: modeldir.EncoderSize) -> Any:
    """A randomly initialised FunASR ``SenseVoiceSmall`` with the given encoder size."""
    import torch
    from funasr.models.sense_voice.model import SenseVoiceSmall

    config = modeldir.model_config(size)
    with torch.random.fork_rng():
        model = SenseVoiceSmall(
            specaug=None,
            normalize=None,
            encoder=config["encoder"],
            encoder_conf=config["encoder_conf"],
            ctc_conf=config["ctc_conf"],
            input_size=modeldir.INPUT_SIZE,
            vocab_size=vocab.VOCAB_SIZE,
            **config["model_conf"],
        )
    return model


def _frontend(cmvn_file: Path | None) -> Any:
    from funasr.frontends.wav_frontend import WavFrontend

    conf = dict(modeldir.model_config(modeldir.TINY_SIZE)["frontend_conf"])
    conf["cmvn_file"] = str(cmvn_file) if cmvn_file else None
    return WavFrontend(**conf)


def _features(frontend: Any, audio: np.ndarray) -> Any:
    import torch

    waveform = torch.from_numpy(audio.astype(np.float32))[None, :]
    feats, _ = frontend(waveform, [waveform.shape[1]])
    return feats[0]


def write_cmvn_from_audio(out_dir: Path, clips: list[np.ndarray]) -> Path:
    """Compute global mean/std of the LFR features of ``clips`` and write ``am.mvn``."""
    import torch

    frontend = _frontend(None)
    stacked = torch.cat([_features(frontend, clip) for clip in clips]).numpy()
    return modeldir.write_cmvn(out_dir / "am.mvn", stacked.mean(axis=0), stacked.std(axis=0))


def _augment(audio: np.ndarray, rng: np.random.Generator, max_padding_s: float) -> np.ndarray:
    # Streaming and VAD cut segments with varying silence around the speech; teach the model that.
    lead, trail = rng.uniform(0.0, max_padding_s, size=2)
    gain = rng.uniform(0.4, 1.0)
    padded = speech.pad_with_silence(audio * gain, lead, trail)
    noise = rng.normal(0.0, 1e-3, size=padded.shape).astype(np.float32)
    return padded + noise


def _background(index: int, rng: np.random.Generator) -> np.ndarray:
    """Audio with no speech: near-silence, white noise, a hum (cycled by ``index``)."""
    seconds = rng.uniform(0.8, 2.0)
    n = int(seconds * speech.SAMPLE_RATE)
    kind = index % 3
    if kind == 0:
        return rng.normal(0.0, 1e-3, size=n).astype(np.float32)
    if kind == 1:
        return rng.normal(0.0, rng.uniform(0.02, 0.2), size=n).astype(np.float32)
    t = np.arange(n) / speech.SAMPLE_RATE
    return (rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(50, 400) * t)).astype(np.float32)


def check_clips(audio: np.ndarray) -> list[np.ndarray]:
    """The fixed variants a sentence must be transcribed exactly from: clean, and padded as VAD cuts do."""
    return [
        audio,
        speech.pad_with_silence(audio, 0.8, 0.8),
        speech.pad_with_silence(audio * 0.6, 0.3, 0.0),
        speech.pad_with_silence(audio, 0.0, 1.0),
    ]


def _background_ids(itn: bool) -> list[int]:
    return [
        vocab.TAG_IDS["nospeech"],
        vocab.TAG_IDS["EMO_UNKNOWN"],
        vocab.TAG_IDS["Event_UNK"],
        vocab.ITN_IDS["withitn" if itn else "woitn"],
    ]


def _target_ids(tokenizer: Any, sentence: KnownSentence, itn: bool) -> list[int]:
    tags = [
        vocab.TAG_IDS[sentence.lang],
        vocab.TAG_IDS["NEUTRAL"],
        vocab.TAG_IDS["Speech"],
        vocab.ITN_IDS["withitn" if itn else "woitn"],
    ]
    return tags + list(tokenizer.encode(sentence.text_itn if itn else sentence.text))


def transcribe_with_funasr(model: Any, tokenizer: Any, frontend: Any, audio: np.ndarray, itn: bool) -> str:
    """FunASR's own ``SenseVoiceSmall.inference`` on one clip (language auto), raw string with tags."""
    import torch

    with torch.no_grad():
        results, _ = model.inference(
            data_in=[audio], key=["clip"], tokenizer=tokenizer, frontend=frontend, device="cpu",
            language="auto", use_itn=itn,
        )
    return str(results[0]["text"])


def train_memorise(
    model: Any,
    model_dir: Path,
    sentences: tuple[KnownSentence, ...],
    clean_audio: list[np.ndarray],
    settings: TrainSettings,
) -> dict[str, Any]:
    """Train ``model`` until FunASR's inference reproduces every sentence (both ITN modes) exactly.

    Returns a small report (steps, seconds, final loss, whether every sentence was learned).
    """
    import torch
    from funasr.tokenizer.sentencepiece_tokenizer import SentencepiecesTokenizer

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    tokenizer = SentencepiecesTokenizer(bpemodel=str(model_dir / vocab.TOKENIZER_FILENAME))
    frontend = _frontend(model_dir / "am.mvn")
    samples: list[tuple[Any, list[int]]] = []
    for sentence, audio in zip(sentences, clean_audio, strict=True):
        variants = [_augment(audio, rng, settings.max_padding_s) for _ in range(settings.variants_per_sentence)]
        for clip in [*check_clips(audio), *variants]:
            feats = _features(frontend, clip)
            for itn in (False, True):
                samples.append((feats, _target_ids(tokenizer, sentence, itn)))
    for index in range(settings.background_clips):
        feats = _features(frontend, _background(index, rng))
        for itn in (False, True):
            samples.append((feats, _background_ids(itn)))

    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    started = time.monotonic()
    learned = False
    clean_checks = 0
    loss_value = float("nan")
    step = 0
    for step in range(1, settings.max_steps + 1):
        model.train()
        batch = [samples[i] for i in rng.choice(len(samples), size=settings.batch_size, replace=False)]
        speech_pad = torch.nn.utils.rnn.pad_sequence([f for f, _ in batch], batch_first=True)
        speech_lengths = torch.tensor([f.shape[0] for f, _ in batch], dtype=torch.int32)
        text_pad = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(t, dtype=torch.int64) for _, t in batch], batch_first=True, padding_value=-1
        )
        text_lengths = torch.tensor([len(t) for _, t in batch], dtype=torch.int32)
        loss, _, _ = model(speech_pad, speech_lengths, text_pad, text_lengths)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        loss_value = float(loss.detach())
        # Linear decay to 10 %: with a constant rate a memorising run keeps oscillating at the end.
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * max(0.1, 1.0 - step / settings.decay_steps)
        if step % settings.check_every == 0:
            model.eval()
            mistakes = _mistakes(model, tokenizer, frontend, sentences, clean_audio)
            log.info("tiny model step %d loss %.3f mistakes %d", step, loss_value, len(mistakes))
            clean_checks = 0 if mistakes else clean_checks + 1
            if clean_checks >= settings.confirm_checks:
                learned = True
                break
    model.eval()
    return {
        "steps": step,
        "seconds": round(time.monotonic() - started, 1),
        "final_loss": round(loss_value, 4),
        "learned": learned,
        "mistakes": _mistakes(model, tokenizer, frontend, sentences, clean_audio),
    }


def _mistakes(
    model: Any, tokenizer: Any, frontend: Any, sentences: tuple[KnownSentence, ...], clips: list[np.ndarray]
) -> list[str]:
    from senseops_common.sensevoice_tags import parse_sensevoice

    wrong: list[str] = []
    for sentence, audio in zip(sentences, clips, strict=True):
        for variant, clip in enumerate(check_clips(audio)):
            for itn in (False, True):
                parsed = parse_sensevoice(transcribe_with_funasr(model, tokenizer, frontend, clip, itn))
                expected = sentence.text_itn if itn else sentence.text
                if parsed.text != expected or parsed.lang != sentence.lang:
                    wrong.append(f"{expected!r} (variant {variant}, itn={itn}) -> {parsed.lang}:{parsed.text!r}")
    silence = np.zeros(speech.SAMPLE_RATE, dtype=np.float32)
    heard = parse_sensevoice(transcribe_with_funasr(model, tokenizer, frontend, silence, False)).text
    if heard:
        wrong.append(f"silence -> {heard!r}")
    return wrong
