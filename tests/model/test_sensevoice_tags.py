"""SenseVoice tag parsing: table cases and properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senseops_common.sensevoice_tags import (
    EMOTION_TAGS,
    EVENT_TAGS,
    LANGUAGE_TAGS,
    parse_sensevoice,
    strip_tags,
    tag,
)

CASES = [
    (
        "stock output",
        "<|zh|><|NEUTRAL|><|Speech|><|woitn|>今天天气很好",
        ("今天天气很好", "zh", "NEUTRAL", "Speech", False),
    ),
    ("with itn", "<|en|><|HAPPY|><|BGM|><|withitn|>Hello world.", ("Hello world.", "en", "HAPPY", "BGM", True)),
    ("no tags", "plain words", ("plain words", "", "", "", None)),
    (
        "tags only",
        "<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|><|woitn|>",
        ("", "nospeech", "EMO_UNKNOWN", "Event_UNK", False),
    ),
    (
        "words after a no-speech tag are noise the model emitted",
        "<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|><|withitn|>Hello",
        ("", "nospeech", "EMO_UNKNOWN", "Event_UNK", True),
    ),
    (
        "two segments keep the words between them (a greedy <|.*|> would not)",
        "<|en|><|NEUTRAL|><|Speech|><|woitn|>first part<|en|><|SAD|><|Speech|><|woitn|>second part",
        ("first part second part", "en", "NEUTRAL", "Speech", False),
    ),
    ("chinese segments join without a space", "<|zh|>你好<|zh|>世界", ("你好世界", "zh", "", "", None)),
    ("a no-speech segment beside a speech one keeps the words", "<|nospeech|><|en|>hi", ("hi", "nospeech", "", "",
                                                                                       None)),
    ("broken tag is text", "a <| b |> c", ("a <| b |> c", "", "", "", None)),
    ("pipe text is text", "x|>y<|z", ("x|>y<|z", "", "", "", None)),
    ("unknown tag removed, not classified", "<|SPECIAL_TOKEN_3|>word", ("word", "", "", "", None)),
    ("whitespace tidied", "<|en|>  spaced   out  ", ("spaced out", "en", "", "", None)),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_table(raw: str, expected: tuple[str, str, str, str, bool | None]) -> None:
    parsed = parse_sensevoice(raw)
    assert (parsed.text, parsed.lang, parsed.emotion, parsed.event, parsed.itn) == expected


# Words: any text without tag delimiters and without leading/trailing/double spaces.
_word = st.text(
    alphabet=st.characters(blacklist_characters="<>|", blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
_text = st.lists(_word, min_size=0, max_size=6).map(" ".join)


@given(
    lang=st.sampled_from(sorted(LANGUAGE_TAGS)),
    emotion=st.sampled_from(sorted(EMOTION_TAGS)),
    event=st.sampled_from(sorted(EVENT_TAGS)),
    itn=st.booleans(),
    text=_text,
)
def test_roundtrip_property(lang: str, emotion: str, event: str, itn: bool, text: str) -> None:
    raw = tag(lang) + tag(emotion) + tag(event) + tag("withitn" if itn else "woitn") + text
    parsed = parse_sensevoice(raw)
    assert (parsed.lang, parsed.emotion, parsed.event, parsed.itn) == (lang, emotion, event, itn)
    assert parsed.text == ("" if lang == "nospeech" else text)  # no words where the model says no speech


@given(first=_text, second=_text)
def test_words_between_tag_blocks_survive(first: str, second: str) -> None:
    raw = f"<|en|><|NEUTRAL|>{first}<|en|><|HAPPY|>{second}"
    stripped = strip_tags(raw)
    for word in (first + " " + second).split():
        assert word in stripped
    assert "<|" not in stripped or "<|" in first + second


@given(text=_text)
def test_strip_is_idempotent(text: str) -> None:
    once = strip_tags("<|zh|>" + text + "<|woitn|>")
    assert strip_tags(once) == once
