"""Deterministic test speech from espeak-ng: text + voice → 16 kHz mono float32 (or a WAV file).

espeak-ng (Debian package ``espeak-ng``) is a formant synthesiser: the same text, voice, speed and pitch
give the same samples on every run, which lets tests and the tiny test model assert exact transcripts.
It speaks at 22.05 kHz; we resample to SenseVoice's 16 kHz with soxr (deterministic as well).

The text is passed on standard input, never on the command line, so text that starts with ``-`` or
contains shell characters is just text.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 16_000
MANDARIN = "cmn"
ENGLISH = "en"
DEFAULT_SPEED_WPM = 160  # espeak-ng's default is 175; a little slower is easier for a tiny model
DEFAULT_PITCH = 50
_TIMEOUT_S = 60


class SpeechSynthesisError(RuntimeError):
    """espeak-ng is missing or refused the input."""


def espeak_available() -> bool:
    """True when the ``espeak-ng`` binary is on PATH."""
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=1)
def available_voices() -> frozenset[str]:
    """Voice names espeak-ng knows (language codes such as ``cmn``/``en-us`` and voice file names)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return frozenset()
    listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, check=False).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:  # header: Pty Language Age/Gender VoiceName File Other Langs
        fields = line.split()
        if len(fields) >= 5:
            names.update({fields[1], fields[3], fields[4], fields[4].rsplit("/", 1)[-1]})
    return frozenset(names)


def synthesize(
    text: str,
    voice: str = ENGLISH,
    *,
    speed_wpm: int = DEFAULT_SPEED_WPM,
    pitch: int = DEFAULT_PITCH,
) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return 16 kHz mono float32 samples in [-1, 1].

    ``voice`` is an espeak-ng voice name (``cmn`` Mandarin, ``en`` English, ``en-us``…). Raises
    :class:`SpeechSynthesisError` with the reason when espeak-ng is missing, fails, or produces nothing.
    """
    if not text.strip():
        raise SpeechSynthesisError("nothing to say: the text is empty")
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SpeechSynthesisError(
            "espeak-ng is not installed; run `scripts/ensure-debian.sh espeak-ng` (or `make debian`)"
        )
    # espeak-ng silently falls back to its default voice for an unknown name; refuse instead, so a
    # typo cannot produce English audio labelled as Mandarin.
    if voice.split("+", 1)[0] not in available_voices():
        raise SpeechSynthesisError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)")
    command = [binary, "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "--stdout", "--stdin"]
    try:
        completed = subprocess.run(
            command, input=text.encode("utf-8"), capture_output=True, timeout=_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SpeechSynthesisError(f"espeak-ng took longer than {_TIMEOUT_S} s") from exc
    if completed.returncode != 0 or not completed.stdout:
        detail = completed.stderr.decode("utf-8", "replace").strip() or f"exit code {completed.returncode}"
        raise SpeechSynthesisError(f"espeak-ng failed for voice {voice!r}: {detail}")
    samples, rate = soundfile.read(io.BytesIO(completed.stdout), dtype="float32", always_2d=False)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if samples.size == 0:
        raise SpeechSynthesisError(f"espeak-ng produced no audio for {text!r}")
    return samples


def pad_with_silence(samples: np.ndarray, before_s: float = 0.0, after_s: float = 0.0) -> np.ndarray:
    """Surround speech with digital silence (useful for VAD and streaming tests)."""
    before = np.zeros(round(before_s * SAMPLE_RATE), dtype=np.float32)
    after = np.zeros(round(after_s * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([before, samples.astype(np.float32), after])


def to_pcm16(samples: np.ndarray) -> bytes:
    """float32 [-1, 1] → 16-bit little-endian PCM bytes, the runtime's streaming wire format."""
    clipped = np.clip(samples, -1.0, 1.0)
    return bytes((clipped * 32767.0).round().astype("<i2").tobytes())


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono samples as a 16-bit PCM WAV file and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(target), samples, sample_rate, subtype="PCM_16")
    return target


def synthesize_wav(
    text: str, path: str | Path, voice: str = ENGLISH, *, speed_wpm: int = DEFAULT_SPEED_WPM
) -> Path:
    """:func:`synthesize` then :func:`write_wav` (16 kHz, 16-bit, mono)."""
    return write_wav(path, synthesize(text, voice, speed_wpm=speed_wpm))
