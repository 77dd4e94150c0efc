"""The shared normaliser and error rates (runtime/senseops_common/text.py): tables + properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senseops_common.text import (
    NormalizeOptions,
    ProfanityMasker,
    error_rate,
    load_profanity_list,
    normalize_text,
    options_from_env,
    scoring_units,
)

NORMALIZE_CASES = [
    ("tags stripped", "<|zh|><|NEUTRAL|><|Speech|><|withitn|>今天天气很好。", "今天天气很好"),
    ("full width folded", "ＴＨＥ　ＦＬＡＳＨ ｓａｌｅ１２３", "the flash sale123"),
    ("traditional to simplified", "直播間秒殺開始", "直播间秒杀开始"),
    ("chinese punctuation removed", "你好，世界！「测试」", "你好世界测试"),
    ("english punctuation removed", "Hello, world! (test)", "hello world test"),
    ("apostrophe inside word kept", "Don't stop", "don't stop"),
    ("spaces between cjk removed", "你 好  世 界", "你好世界"),
    ("mixed keeps word spaces", "直播间 flash  sale 开始", "直播间 flash sale 开始"),
    ("profanity cjk masked", "这个傻逼主播", "这个**主播"),
    ("profanity english whole word", "shit happens, shitake", "**** happens shitake"),
    ("profanity case-insensitive", "FUCK", "****"),
    ("empty stays empty", "", ""),
    ("only tags and punctuation", "<|nospeech|><|Event_UNK|>。！", ""),
]


@pytest.mark.parametrize(("name", "raw", "expected"), NORMALIZE_CASES, ids=[c[0] for c in NORMALIZE_CASES])
def test_normalize_text(name: str, raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_options_switch_steps_off() -> None:
    options = NormalizeOptions(simplify=False, lowercase=False, strip_punctuation=False, masker=None)
    assert normalize_text("直播間 Hello, 傻逼", options) == "直播間 Hello, 傻逼"


def test_custom_profanity_list(tmp_path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("# comment\n\nbadword\n坏词\n", encoding="utf-8")
    masker = ProfanityMasker(load_profanity_list(path), mask_char="#")
    assert normalize_text("a BadWord and 坏词 here", NormalizeOptions(masker=masker)) == "a ####### and ## here"


def test_profanity_list_from_the_environment(tmp_path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("frobnicate\n", encoding="utf-8")
    options = options_from_env({"SENSEOPS_PROFANITY_LIST": str(path)})
    assert normalize_text("Frobnicate fuck", options) == "********** fuck"
    assert options_from_env({}) == NormalizeOptions()


UNIT_CASES = [
    ("今天天气", ["今", "天", "天", "气"]),
    ("the flash sale", ["the", "flash", "sale"]),
    ("直播间 flash sale", ["直", "播", "间", "flash", "sale"]),
    ("", []),
]


@pytest.mark.parametrize(("text", "units"), UNIT_CASES)
def test_scoring_units(text: str, units: list[str]) -> None:
    assert scoring_units(text) == units


ERROR_CASES = [
    # name, refs, hyps, (subs, dels, ins, ref_units)
    ("identical", ["直播间秒杀"], ["直播间秒杀"], (0, 0, 0, 5)),
    ("one substitution cer", ["直播间秒杀"], ["直播问秒杀"], (1, 0, 0, 5)),
    ("deletion", ["直播间秒杀"], ["直播秒杀"], (0, 1, 0, 5)),
    ("insertion", ["直播间"], ["直播间啊"], (0, 0, 1, 3)),
    ("english wer", ["the flash sale starts now"], ["the flash sail starts"], (1, 1, 0, 5)),
    ("normalised before scoring", ["直播間，秒殺！"], ["<|zh|>直播间秒杀"], (0, 0, 0, 5)),
    ("empty reference counts insertions", [""], ["多余"], (0, 0, 2, 0)),
    ("empty hypothesis counts deletions", ["你好"], [""], (0, 2, 0, 2)),
]


@pytest.mark.parametrize(("name", "refs", "hyps", "expected"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_rate(name: str, refs: list[str], hyps: list[str], expected: tuple[int, int, int, int]) -> None:
    result = error_rate(refs, hyps)
    assert (result.substitutions, result.deletions, result.insertions, result.reference_units) == expected


def test_error_rate_pools_over_utterances() -> None:
    result = error_rate(["你好", "世界和平"], ["你好", "世界"])
    assert result.rate == pytest.approx(2 / 6)


def test_error_rate_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rate(["a", "b"], ["a"])


_text = st.text(alphabet=st.sampled_from(list("直播間秒殺 abcABCＡＢ，。!?'<|>zh") ), max_size=30)


@given(_text)
def test_normalize_is_idempotent(raw: str) -> None:
    once = normalize_text(raw)
    assert normalize_text(once) == once


@given(_text)
def test_text_scores_zero_against_itself(raw: str) -> None:
    assert error_rate([raw], [raw]).errors == 0
