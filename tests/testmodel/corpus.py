"""The sentences the tiny test model knows, and how they are spoken.

Each sentence has two targets: without ITN (``<|woitn|>``: lower case, no punctuation) and with ITN
(``<|withitn|>``: capitalised and punctuated), so tests can observe ITN on/off through the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from senseops_common import speech


@dataclass(frozen=True)
class KnownSentence:
    """One utterance the tiny model is trained to transcribe exactly."""

    text: str  # the transcript without ITN, as the model emits it with ``itn=False``
    text_itn: str  # the transcript with ITN (``itn=True``)
    lang: str  # SenseVoice language tag name: "zh" or "en"
    voice: str  # espeak-ng voice

    def synthesize(self) -> np.ndarray:
        """The espeak-ng audio of this sentence (16 kHz mono float32, deterministic)."""
        return speech.synthesize(self.text, self.voice)


KNOWN_SENTENCES: tuple[KnownSentence, ...] = (
    KnownSentence("今天天气很好", "今天天气很好。", "zh", speech.MANDARIN),
    KnownSentence("欢迎来到直播间", "欢迎来到直播间！", "zh", speech.MANDARIN),
    KnownSentence("请把音量调大一点", "请把音量调大一点。", "zh", speech.MANDARIN),
    KnownSentence("hello world", "Hello world.", "en", speech.ENGLISH),
    KnownSentence("welcome to the live stream", "Welcome to the live stream!", "en", speech.ENGLISH),
    KnownSentence("please turn up the volume", "Please turn up the volume.", "en", speech.ENGLISH),
)


def english_words(sentences: tuple[KnownSentence, ...] = KNOWN_SENTENCES) -> list[str]:
    """English words of the corpus (they become single tokenizer pieces)."""
    words: list[str] = []
    for sentence in sentences:
        if sentence.lang == "en":
            words += [w.strip(".,!?").lower() for w in sentence.text_itn.split()]
    return sorted(set(words))
