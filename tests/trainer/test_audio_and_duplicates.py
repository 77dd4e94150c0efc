"""Audio statistics (the no-speech rule's input) and duplicate recordings, on real espeak-ng speech and
generated noise; the sentence grouping of the validation split."""

from __future__ import annotations

import numpy as np
import pytest

from senseops_common.speech import espeak_available, synthesize
from senseops_trainer.audio_checks import audio_stats, frame_levels_db
from senseops_trainer.dedup import AudioItem, envelope, envelope_similarity, find_duplicates, pcm_sha256
from senseops_trainer.segments import Segment
from senseops_trainer.split import edit_distance, group_sentences, near_duplicates, split_segments

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make debian)")
RATE = 16_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synthesize("直播间秒杀开始", "cmn", speed_wpm=160)


def _noise(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * level).astype(np.float32)


@needs_espeak
def test_speech_has_a_wide_dynamic_range_and_noise_does_not(speech) -> None:
    assert audio_stats(speech).dynamic_range_db > 40
    assert audio_stats(_noise(2.0)).dynamic_range_db < 2
    hum = 0.1 * np.sin(2 * np.pi * 50 * np.arange(2 * RATE) / RATE)
    assert audio_stats(hum).dynamic_range_db < 1
    # Speech under white noise at 5 dB SNR still varies by more than the rule's 6 dB.
    power = float(np.mean(speech[np.abs(speech) > 0.01] ** 2))
    noisy = speech + _noise(len(speech) / RATE, float(np.sqrt(power / 10 ** 0.5)))
    assert audio_stats(noisy).dynamic_range_db > 6


def test_frame_levels_handle_empty_and_short_clips() -> None:
    assert frame_levels_db(np.zeros(0)).shape == (1,)
    assert frame_levels_db(np.ones(100) * 0.5)[0] == pytest.approx(-6.02, abs=0.01)
    assert audio_stats(np.zeros(RATE)).peak_dbfs < -150


def item(sid: str, samples: np.ndarray, session: str = "s1", start_ms: int = 0, anchor: str = "a") -> AudioItem:
    end = start_ms + round(len(samples) * 1000 / RATE)
    return AudioItem(sid, anchor, session, start_ms, end, pcm_sha256(samples), envelope(frame_levels_db(samples)))


@needs_espeak
def test_duplicates_by_rule(speech) -> None:
    other = synthesize("the flash sale starts now", "en", speed_wpm=150)
    recut = np.concatenate([speech[int(0.12 * RATE):], np.zeros(int(0.08 * RATE), np.float32)])
    items = [
        item("orig", speech, "s1", 0),
        item("other", other, "s1", 5000),
        item("replay", speech.copy(), "s2", 0),  # same samples, another session
        item("recut", recut, "s3", 0),  # cut 120 ms later: same speech
        item("overlap", speech[int(0.2 * RATE):], "s1", 200),  # same stream position again
        item("other-anchor", speech.copy(), "s1", 0, anchor="b"),  # identical audio, but exact is global
    ]
    found = {d.segment_id: (d.rule, d.kept_id) for d in find_duplicates(items)}
    assert found == {"replay": ("exact", "orig"), "recut": ("fingerprint", "orig"),
                     "overlap": ("overlap", "orig"), "other-anchor": ("exact", "orig")}


@needs_espeak
def test_different_sentences_and_noise_are_not_fingerprint_duplicates(speech) -> None:
    slower = synthesize("直播间秒杀开始", "cmn", speed_wpm=150)  # the same sentence spoken again is not a copy
    other = synthesize("粉丝团秒杀开始", "cmn", speed_wpm=160)
    items = [item("a", speech, "s1", 0), item("b", slower, "s2", 0), item("c", other, "s3", 0),
             item("n1", _noise(2.0, seed=1), "s4", 0), item("n2", _noise(2.0, seed=2), "s5", 0)]
    assert find_duplicates(items) == []
    noise_a, noise_b = envelope(frame_levels_db(_noise(1.0))), envelope(frame_levels_db(_noise(1.0, seed=3)))
    assert envelope_similarity(noise_a, noise_b) < 0.5


def test_pcm_hash_ignores_nothing_but_the_samples() -> None:
    a = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    assert pcm_sha256(a) == pcm_sha256(a.astype(np.float64))
    b = a.copy()
    b[10] += 0.01
    assert pcm_sha256(a) != pcm_sha256(b)


# --- validation split by sentence group ----------------------------------------------------------------------

def seg(segment_id: str, text: str) -> Segment:
    return Segment(segment_id=segment_id, anchor_id="a", session_ts="20260301T100000Z",
                   audio_key=f"raw/a/x/{segment_id}.wav", text=text, start_ms=0, end_ms=2000)


NEAR_CASES = [
    ("one char in seven", "直播间秒杀开始", "直播间秒杀开使", True),
    ("two of five words", "the flash sale starts now", "the flash sale ends soon", False),
    ("one of ten chars", "直播间秒杀开始了大家快来", "直播间秒杀开始啦大家快来", True),
    ("length differs a lot", "直播间", "直播间秒杀开始", False),
]


@pytest.mark.parametrize(("name", "a", "b", "expected"), NEAR_CASES, ids=[c[0] for c in NEAR_CASES])
def test_near_duplicates(name, a, b, expected) -> None:
    from senseops_common.text import scoring_units

    assert near_duplicates(scoring_units(a), scoring_units(b)) is expected


def test_edit_distance() -> None:
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance([], list("ab")) == 2


def test_group_sentences_joins_near_duplicates_to_a_leader_not_along_chains() -> None:
    near = ["直播间秒杀开始了大家快来", "直播间秒杀开始啦大家快来", "直播间秒杀开始了大家快去"]
    # Each step of this chain changes 2 of 10 characters; its ends differ by 6 and must stay apart.
    chain = ["一二三四五六七八九十", "甲乙三四五六七八九十", "甲乙丙丁五六七八九十", "甲乙丙丁戊己七八九十"]
    groups = group_sentences([*near, *chain, "粉丝团链接已上"])
    assert {groups[t] for t in near} == {min(near)}
    assert groups["粉丝团链接已上"] == "粉丝团链接已上"
    assert groups[chain[0]] != groups[chain[3]]


def test_no_sentence_is_on_both_sides() -> None:
    # Every sentence twice (two speeds), plus near-duplicate spellings: validation never shares a sentence.
    rng = np.random.default_rng(0)
    segments = []
    for i in range(40):
        text = "".join(chr(0x4E00 + int(c)) for c in rng.integers(0, 5000, 8))
        segments += [seg(f"s{i}a", text), seg(f"s{i}b", text + "！"), seg(f"s{i}c", text[:-1] + "啊")]
    result = split_segments(segments, 0.2)
    from senseops_common.text import normalize_text

    train = {normalize_text(s.text) for s in result.train}
    val = {normalize_text(s.text) for s in result.val}
    assert val and not train & val
    assert result.near_duplicate_sentences == 40  # each one-character variant joined its sentence
    assert result.repeated_segments == 80  # a and b normalise to the same sentence
    # Each group is whole on one side.
    for i in range(40):
        sides = {("val" if s in result.val else "train") for s in segments if s.segment_id.startswith(f"s{i}")
                 and s.segment_id[len(f"s{i}"):] in ("a", "b", "c")}
        assert len(sides) == 1
