"""SenseVoice's rich-transcription tags: the one place that knows them, and the parser for model output.

SenseVoice decodes to a string such as ``<|zh|><|NEUTRAL|><|Speech|><|woitn|>今天天气很好``: four tags
(language, emotion, audio event, inverse-text-normalisation style) followed by the words. FunASR joins
the outputs of several VAD segments by concatenation, so tag blocks may also appear *inside* a string.

A tag is ``<|`` + a short name without ``|``, ``<`` or ``>`` + ``|>``. The match is deliberately
non-greedy and bounded: a greedy ``<\\|.*\\|>`` would swallow every word between the first and the last
tag of a multi-segment string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The names SenseVoice-Small emits, grouped by what they describe.
LANGUAGE_TAGS: frozenset[str] = frozenset({"zh", "en", "yue", "ja", "ko", "nospeech"})
EMOTION_TAGS: frozenset[str] = frozenset(
    {"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN"}
)
EVENT_TAGS: frozenset[str] = frozenset(
    {
        "Speech",
        "BGM",
        "Applause",
        "Laughter",
        "Cry",
        "Sneeze",
        "Breath",
        "Cough",
        "Sing",
        "Speech_Noise",
        "GBG",
        "Event_UNK",
    }
)
ITN_TAGS: frozenset[str] = frozenset({"withitn", "woitn"})

# Bounded name, no delimiter characters inside: never spans from one tag to another.
TAG_PATTERN = re.compile(r"<\|([^|<>\s]{1,40})\|>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ParsedTranscript:
    """SenseVoice output split into its parts."""

    text: str
    lang: str = ""
    emotion: str = ""
    event: str = ""
    itn: bool | None = None  # True for <|withitn|>, False for <|woitn|>, None when absent
    tags: tuple[str, ...] = ()  # every tag name in order of appearance, for debugging


def tag(name: str) -> str:
    """The literal token for a tag name: ``tag("zh") == "<|zh|>"``."""
    return f"<|{name}|>"


def strip_tags(raw: str) -> str:
    """Remove every SenseVoice tag and return the words, with whitespace tidied.

    Only well-formed tags are removed; text such as ``a <| b`` or ``x|>y`` is kept as it is.
    """
    pieces = TAG_PATTERN.split(raw)[::2]  # split() interleaves captured names; keep the text between
    joined = ""
    for piece in pieces:
        if joined and piece and _needs_space(joined[-1], piece[0]):
            joined += " "
        joined += piece
    return _SPACES.sub(" ", joined).strip()


def parse_sensevoice(raw: str) -> ParsedTranscript:
    """Split a decoded SenseVoice string into text, language, emotion, event and ITN style.

    The first tag of each kind wins (the first segment's tags describe the start of the audio); tags the
    model emits that belong to no known kind are kept in ``tags`` and dropped from the text.
    """
    names = TAG_PATTERN.findall(raw)
    lang = _first(names, LANGUAGE_TAGS)
    emotion = _first(names, EMOTION_TAGS)
    event = _first(names, EVENT_TAGS)
    itn_name = _first(names, ITN_TAGS)
    itn = None if not itn_name else itn_name == "withitn"
    text = strip_tags(raw)
    languages = [name for name in names if name in LANGUAGE_TAGS]
    if languages and all(name == "nospeech" for name in languages):
        # The model itself says there is no speech: tokens after that tag are noise, not words (a
        # half-trained or fine-tuned model can emit some, e.g. after the ITN tag on silence).
        text = ""
    return ParsedTranscript(
        text=text,
        lang=lang,
        emotion=emotion,
        event=event,
        itn=itn,
        tags=tuple(names),
    )


def _first(names: list[str], kind: frozenset[str]) -> str:
    return next((name for name in names if name in kind), "")


def _needs_space(left: str, right: str) -> bool:
    # Tags sit between segments without spaces of their own: "word<|en|>word" must not glue two English
    # words together, while "你好<|zh|>世界" must not gain a space Chinese does not write.
    if left.isspace() or right.isspace():
        return False
    return not (_is_cjk(left) or _is_cjk(right))


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3000 <= code <= 0x30FF  # CJK punctuation, kana
        or 0x3400 <= code <= 0x9FFF  # ideographs (+ extension A)
        or 0xAC00 <= code <= 0xD7AF  # hangul
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
    )
