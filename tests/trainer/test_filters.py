"""Pseudo-label quality rules (senseops_trainer.filters): one table per rule, then the combination."""

from __future__ import annotations

import dataclasses

import pytest

from senseops_trainer.filters import (
    AUDIO_STATS_KEY,
    DEFAULT_RATE_LIMITS,
    RULE_NAMES,
    FilterConfig,
    apply_filters,
    first_rejection,
    max_ngram_repeat,
    rule_audio,
    rule_confidence,
    rule_duration,
    rule_empty_text,
    rule_language,
    rule_rate,
    rule_repetition,
    rule_stability,
    text_script,
)
from senseops_trainer.segments import Segment

CFG = FilterConfig()


def seg(text: str = "直播间秒杀开始", seconds: float = 2.0, **kw) -> Segment:
    base = dict(segment_id="s1", anchor_id="a", session_ts="20260301T100000Z", audio_key="raw/a/x/s1.wav",
                text=text, start_ms=0, end_ms=int(seconds * 1000), lang="zh", confidence=0.9)
    base.update(kw)
    return Segment(**base)


RULE_CASES = [
    # name, rule, segment, expected reason
    ("good segment passes confidence", rule_confidence, seg(), None),
    ("low confidence", rule_confidence, seg(confidence=0.3), "low_confidence"),
    ("confidence at threshold kept", rule_confidence, seg(confidence=CFG.min_confidence), None),
    ("too short", rule_duration, seg(seconds=0.2), "too_short"),
    ("too long", rule_duration, seg(seconds=45), "too_long"),
    ("duration ok", rule_duration, seg(seconds=3), None),
    ("tags only is empty", rule_empty_text, seg("<|nospeech|><|Event_UNK|>"), "empty_text"),
    ("punctuation only is empty", rule_empty_text, seg("。。！"), "empty_text"),
    ("words are not empty", rule_empty_text, seg("好"), None),
    ("repeated bigram loop", rule_repetition, seg("好的好的好的好的好的好的"), "repeated_ngrams"),
    ("repeated english word", rule_repetition, seg("ok ok ok ok ok", lang="en"), "repeated_ngrams"),
    ("natural repetition kept", rule_repetition, seg("天天向上好好学习"), None),
    ("three repeats below limit", rule_repetition, seg("好的好的好的"), None),
    ("too many chars per second", rule_rate, seg("今天我们来聊一聊这个产品的材质和做工", seconds=1.0), "rate_outlier"),
    ("too few chars per second", rule_rate, seg("嗯", seconds=5.0), "rate_outlier"),
    ("normal rate", rule_rate, seg("直播间秒杀开始", seconds=2.0), None),
    ("english words per second", rule_rate, seg("the flash sale starts now", seconds=2.0, lang="en"), None),
    ("zh tag with chinese text", rule_language, seg(), None),
    ("en tag with chinese text", rule_language, seg(lang="en"), "language_mismatch"),
    ("zh tag with english text", rule_language, seg("hello there", lang="zh"), "language_mismatch"),
    ("code switching allowed", rule_language, seg("直播间 flash sale", lang="zh"), None),
    ("language not trained", rule_language, seg(lang="ja"), "language_mismatch"),
    ("tag written with brackets", rule_language, seg(lang="<|zh|>"), None),
    ("stability check off ignores disagreement", rule_stability, seg(redecoded_text="完全不同"), None),
]


@pytest.mark.parametrize(("name", "rule", "segment", "expected"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_rule(name, rule, segment, expected) -> None:
    assert rule(segment, CFG) == expected


STABILITY_CASES = [
    ("agree", "直播间秒杀开始", None),
    ("one char off is within 20%", "直播间秒杀开使", None),
    ("disagree", "完全不同的一句话", "unstable"),
    ("not decoded", None, None),
]


@pytest.mark.parametrize(("name", "redecoded", "expected"), STABILITY_CASES, ids=[c[0] for c in STABILITY_CASES])
def test_stability_rule_when_enabled(name, redecoded, expected) -> None:
    cfg = dataclasses.replace(CFG, stability_check=True)
    assert rule_stability(seg(redecoded_text=redecoded), cfg) == expected


@pytest.mark.parametrize(
    ("units", "n", "count"),
    [(list("好的好的好的"), 2, 3), (list("abc"), 1, 1), (list("ab"), 3, 0), ([], 1, 0)],
)
def test_max_ngram_repeat(units, n, count) -> None:
    assert max_ngram_repeat(units, n) == count


@pytest.mark.parametrize(
    ("text", "script"), [("你好", "zh"), ("hello", "en"), ("你好 hello", "mixed"), ("123", "")]
)
def test_text_script(text, script) -> None:
    assert text_script(text) == script


def test_first_rejection_blames_the_first_rule_in_order() -> None:
    # Both too short and low confidence: duration is checked first.
    assert first_rejection(seg(seconds=0.1, confidence=0.1), CFG) == "too_short"


def test_apply_filters_counts_every_rule_and_keeps_order() -> None:
    segments = [
        seg(segment_id="good1"),
        seg(segment_id="noise", text="嗯嗯啊", confidence=0.3),
        seg(segment_id="loop", text="好的好的好的好的好的"),
        seg(segment_id="good2", text="the flash sale starts now", lang="en"),
        seg(segment_id="short", seconds=0.1),
    ]
    result = apply_filters(segments, CFG)
    assert [s.segment_id for s in result.kept] == ["good1", "good2"]
    assert result.removed == {"low_confidence": ["noise"], "repeated_ngrams": ["loop"], "too_short": ["short"]}
    assert set(result.counts) == set(RULE_NAMES)
    assert sum(result.counts.values()) == 3
    assert result.kept_hours == pytest.approx(4.0 / 3600)


# --- language-aware rate limits (issue 15) ---------------------------------------------------------------

LONG_68 = "今天我们来聊一聊这个产品的材质和做工还有售后服务的所有细节以及发货时间和退换货的规则说明" \
    "最后再给大家讲一讲优惠券怎么领取和使用的方法好吗"

RATE_CASES = [
    ("issue 15: 68 Mandarin chars on 7.2 s (9.4/s) is removed by default", seg(LONG_68, seconds=7.2), {},
     "rate_outlier"),
    ("fast but real Mandarin: 7.3 chars/s", seg("直播间秒杀开始优惠券到了链接已上", seconds=2.2), {}, None),
    ("English limit is in words: 10 words in 2 s (5/s) is too fast", seg(" ".join(["sale"] * 10), seconds=2.0,
                                                                        lang="en"), {}, "rate_outlier"),
    ("English 4 words/s is fine", seg("the flash sale starts now now now now", seconds=2.0, lang="en"), {}, None),
    ("Mandarin chars per s would be far too strict as English words: 5 words in 1.2 s",
     seg("the flash sale starts now", seconds=1.2, lang="en"), {}, None),
    ("Japanese kana: 10 chars/s is within 12", seg("ちょくばいのセールです", seconds=1.1, lang="ja"), {}, None),
    ("an old single-number setting still applies to every language", seg(LONG_68, seconds=7.2),
     {"max_units_per_s": 12.0}, None),
    ("a per-language mapping overrides one language only", seg(LONG_68, seconds=7.2),
     {"max_units_per_s": {"en": 3.0}}, "rate_outlier"),
    ("a language without a default uses its script's unit (words)", seg("una oferta ahora", seconds=1.0,
                                                                         lang="es"), {}, None),
]


@pytest.mark.parametrize(("name", "segment", "settings", "expected"), RATE_CASES, ids=[c[0] for c in RATE_CASES])
def test_language_aware_rate(name, segment, settings, expected) -> None:
    assert rule_rate(segment, dataclasses.replace(CFG, **settings)) == expected


def test_every_default_rate_limit_names_its_source() -> None:
    for lang, limit in DEFAULT_RATE_LIMITS.items():
        assert limit.source and limit.min_per_s < limit.max_per_s, lang


# --- the audio-side rule ------------------------------------------------------------------------------------

def with_audio(**stats) -> Segment:
    base = {"duration_s": 2.0, "peak_dbfs": -15.0, "floor_dbfs": -60.0, "dynamic_range_db": 40.0, "speech_s": 1.6}
    return seg(extra={AUDIO_STATS_KEY: {**base, **stats}})


AUDIO_CASES = [
    ("speech", with_audio(), {}, None),
    ("white noise with a plausible label (0.9 dB of range)", with_audio(dynamic_range_db=0.9), {},
     "no_speech_audio"),
    ("digital silence", with_audio(peak_dbfs=-200.0, dynamic_range_db=0.0), {}, "no_speech_audio"),
    ("quiet speech (-56 dBFS peak) is still speech", with_audio(peak_dbfs=-56.0), {}, None),
    ("speech under noise at 5 dB SNR (8.6 dB range) is kept", with_audio(dynamic_range_db=8.6), {}, None),
    ("no audio statistics: not judged", seg(), {}, None),
    ("check switched off", with_audio(dynamic_range_db=0.5), {"audio_check": False}, None),
]


@pytest.mark.parametrize(("name", "segment", "settings", "expected"), AUDIO_CASES, ids=[c[0] for c in AUDIO_CASES])
def test_audio_rule(name, segment, settings, expected) -> None:
    assert rule_audio(segment, dataclasses.replace(CFG, **settings)) == expected


def test_audio_rule_runs_after_the_text_rules() -> None:
    # Noise at low confidence is blamed on the confidence (cheaper, certain), not on the audio.
    noisy = dataclasses.replace(with_audio(dynamic_range_db=0.5), confidence=0.2)
    assert first_rejection(noisy, CFG) == "low_confidence"
    assert first_rejection(with_audio(dynamic_range_db=0.5), CFG) == "no_speech_audio"
