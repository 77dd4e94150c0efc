"""Synthetic domain recordings for tests and the demo: espeak-ng speech in the seed's recording layout.

The domain is live-stream shopping (直播间, 秒杀, 优惠券 / flash sale, coupon, checkout): words a general
tiny model has never heard. Sentences are ``subject + predicate`` combinations; the *golden* (held-out)
sentences are combinations that never occur in training, built from parts that do, so an improvement on
them is generalisation rather than memorisation of whole sentences.

Good segments carry the correct text as the live model's pseudo-label, written the untidy way a live
model with ITN writes it (punctuation, full-width letters, some traditional characters) so normalisation
has work to do. Planted bad segments — noise with a hallucinated label, a label that cannot fit the audio,
a repetition loop, a wrong language tag, a too-short blip and a tags-only label — each carry a
``planted`` reason in the truth map the generator returns (not in the store: the trainer must find them).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import soundfile

from senseops_common.layout import AsrPartWriter, SegmentRecord, raw_segment_key
from senseops_common.speech import ENGLISH, MANDARIN, SAMPLE_RATE, synthesize
from senseops_common.storage import StoreBase as Store

ZH_SUBJECTS = ("直播间", "粉丝团", "主播")
ZH_PREDICATES = ("秒杀开始", "优惠券到了", "链接已上", "库存不多", "全部包邮")
EN_SUBJECTS = ("the flash sale", "your coupon", "the checkout link")
EN_PREDICATES = ("starts now", "is ready", "ends soon")

# Held-out combinations: never recorded as training data, only as golden (human-verified) segments.
ZH_GOLDEN = (("直播间", "库存不多"), ("粉丝团", "链接已上"), ("主播", "秒杀开始"))
EN_GOLDEN = (("your coupon", "ends soon"), ("the flash sale", "is ready"))

# Live-model styling for pseudo-labels (normalisation undoes all of it).
_TRADITIONAL = {"间": "間", "杀": "殺", "优": "優", "惠": "惠", "链": "鏈", "库": "庫", "团": "團", "邮": "郵"}
SPEEDS_WPM = (150, 175)  # two speaking rates per training sentence: a little acoustic variety
# Planted text defects use speech at other rates: their audio is not a copy of a good segment's (the
# collect stage drops copies before the filters could blame the text).
PLANTED_SPEEDS_WPM = (165, 140)

ANCHOR = "anchor-demo"
OTHER_ANCHOR = "anchor-other"
SESSION_TS = ("20260301T100000Z", "20260302T100000Z")
OLD_SESSION_TS = "20250101T100000Z"  # outside the demo's time window
WINDOW = ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
GOLDEN_KEY = "golden/anchor-demo.jsonl"


def zh_sentence(subject: str, predicate: str) -> str:
    """A Mandarin domain sentence (plain, simplified: the reference form)."""
    return subject + predicate


def en_sentence(subject: str, predicate: str) -> str:
    """An English domain sentence (plain, lower case: the reference form)."""
    return f"{subject} {predicate}"


def training_sentences() -> list[tuple[str, str]]:
    """(language, sentence) pairs recorded as good training data (golden combinations excluded)."""
    zh = [("zh", zh_sentence(s, p)) for s, p in itertools.product(ZH_SUBJECTS, ZH_PREDICATES)]
    en = [("en", en_sentence(s, p)) for s, p in itertools.product(EN_SUBJECTS, EN_PREDICATES)]
    golden = set(golden_sentences())
    return [pair for pair in zh + en if pair not in golden]


def golden_sentences() -> list[tuple[str, str]]:
    """(language, sentence) pairs of the held-out golden set."""
    return [("zh", zh_sentence(s, p)) for s, p in ZH_GOLDEN] + [("en", en_sentence(s, p)) for s, p in EN_GOLDEN]


def styled_label(lang: str, sentence: str, index: int) -> str:
    """The pseudo-label as a live model with ITN might write it: punctuation, full width, traditional."""
    if lang == "en":
        text = sentence.capitalize() + ("!" if index % 2 else ".")
        if index % 3 == 0:  # full-width Latin letters, folded back by NFKC
            text = "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in text)
        return text
    text = sentence + ("！" if index % 2 else "。")
    if index % 2 == 0:
        text = "".join(_TRADITIONAL.get(c, c) for c in text)
    return f"<|{lang}|><|NEUTRAL|><|Speech|><|withitn|>{text}"


@dataclass
class PlannedSegment:
    """One segment to record: its audio, its record fields, and (for planted ones) why it is bad."""

    anchor_id: str
    session_ts: str
    segment_id: str
    audio: np.ndarray
    text: str
    lang: str
    confidence: float
    planted: str = ""  # "" for good segments, else the defect
    reference: str = ""  # the true words (golden segments and good ones)
    extra: dict[str, str] = field(default_factory=dict)
    good_kind: str = ""  # good but hard (noisy, quiet, fast): the filters must keep it
    overlap_previous_ms: int | None = None  # start this long after the previous segment's start (a re-cut)


def _voice(lang: str) -> str:
    return MANDARIN if lang == "zh" else ENGLISH


def _speech(lang: str, sentence: str, speed: int) -> np.ndarray:
    return synthesize(sentence, _voice(lang), speed_wpm=speed)


def plan_corpus(seed: int = 7, hard_cases: bool = False) -> Iterator[PlannedSegment]:
    """Every segment of the synthetic corpus, deterministic for a seed (espeak-ng is deterministic).

    ``hard_cases`` adds the bad segments no text rule sees alone (see :func:`plan_hard_cases`)."""
    rng = np.random.default_rng(seed)
    n = 0

    def next_id() -> str:
        nonlocal n
        n += 1
        return f"seg-{n:04d}"

    # Good training data: each sentence at two speeds, spread over two sessions.
    for index, ((lang, sentence), speed) in enumerate(itertools.product(training_sentences(), SPEEDS_WPM)):
        yield PlannedSegment(
            ANCHOR, SESSION_TS[index % 2], next_id(), _speech(lang, sentence, speed),
            styled_label(lang, sentence, index // 2), lang, float(rng.uniform(0.8, 0.98)), reference=sentence,
        )
    # Golden sentences are recorded too (the live model's label is wrong: it never heard them) and a
    # human later corrected them into the golden file.
    for lang, sentence in golden_sentences():
        seg_id = next_id()
        yield PlannedSegment(
            ANCHOR, SESSION_TS[0], seg_id, _speech(lang, sentence, SPEEDS_WPM[0]),
            styled_label(lang, sentence[::-1] if lang == "zh" else "coupon sale now", 1), lang, 0.7,
            reference=sentence, extra={"golden": "1"},
        )
    # Planted bad segments, one per defect the filters must catch.
    zh_ref = zh_sentence(ZH_SUBJECTS[0], ZH_PREDICATES[0])
    en_ref = en_sentence(EN_SUBJECTS[0], EN_PREDICATES[0])
    noise = (rng.standard_normal(int(2.0 * SAMPLE_RATE)) * 0.1).astype(np.float32)
    yield PlannedSegment(ANCHOR, SESSION_TS[1], next_id(), noise, "嗯嗯啊", "zh", 0.31, planted="noise")
    long_wrong = "今天我们来聊一聊这个产品的材质和做工还有售后服务的所有细节以及发货时间和退换货的规则说明"
    yield PlannedSegment(
        ANCHOR, SESSION_TS[1], next_id(), _speech("zh", zh_ref, PLANTED_SPEEDS_WPM[0]), long_wrong, "zh", 0.85,
        planted="wrong_text",
    )
    yield PlannedSegment(
        ANCHOR, SESSION_TS[1], next_id(), _speech("zh", zh_ref, PLANTED_SPEEDS_WPM[1]), "好的" * 6, "zh", 0.9,
        planted="repeats",
    )
    yield PlannedSegment(
        ANCHOR, SESSION_TS[0], next_id(), _speech("en", en_ref, PLANTED_SPEEDS_WPM[1]), "直播间秒杀开始", "en", 0.88,
        planted="language_mismatch",
    )
    yield PlannedSegment(
        ANCHOR, SESSION_TS[0], next_id(), _speech("en", "now", 175)[: int(0.25 * SAMPLE_RATE)], "now", "en",
        0.9, planted="too_short",
    )
    silence = np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32)
    yield PlannedSegment(
        ANCHOR, SESSION_TS[0], next_id(), silence, "<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|>", "nospeech",
        0.9, planted="empty_text",
    )
    if hard_cases:
        yield from plan_hard_cases(rng, next_id)
    # Outside the selection: another anchor, and an old session outside the time window.
    yield PlannedSegment(
        OTHER_ANCHOR, SESSION_TS[0], next_id(), _speech("en", en_ref, 160), en_ref, "en", 0.9,
        planted="other_anchor",
    )
    yield PlannedSegment(
        ANCHOR, OLD_SESSION_TS, next_id(), _speech("zh", zh_ref, 160), zh_ref, "zh", 0.9,
        planted="outside_window",
    )


# 68 characters: the label of issue 15's planted segment, on ~7.2 s of Mandarin speech (≈ 9.5 chars/s).
LONG_LABEL_68 = (
    "今天我们来聊一聊这个产品的材质和做工还有售后服务的所有细节以及发货时间和退换货的规则说明"
    "最后再给大家讲一讲优惠券怎么领取和使用的方法好吗"
)
LONG_SPEECH_ZH = "今天直播间的秒杀活动马上开始大家准备好优惠券"  # ≈ 7.1 s at 200 wpm
LONG_SPEECH_WPM = 200


def _with_noise(rng: np.random.Generator, speech: np.ndarray, snr_db: float) -> np.ndarray:
    """White noise at ``snr_db`` below the speech's active-sample power (the whole clip, pauses included)."""
    power = float(np.mean(speech[np.abs(speech) > 0.01] ** 2))
    noise = rng.standard_normal(len(speech)) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(speech + noise, -1.0, 1.0).astype(np.float32)


def plan_hard_cases(rng: np.random.Generator, next_id: Callable[[], str]) -> Iterator[PlannedSegment]:
    """Issue 15's bad segments, duplicates of good recordings (a client's replay after a reconnect), and
    good-but-hard segments that must survive the filters."""
    sess = SESSION_TS[1]
    assert len(LONG_LABEL_68) == 68
    yield PlannedSegment(ANCHOR, sess, next_id(), _speech("zh", LONG_SPEECH_ZH, LONG_SPEECH_WPM), LONG_LABEL_68,
                         "zh", 0.9, planted="long_label_68_chars")
    noise = (rng.standard_normal(int(2.5 * SAMPLE_RATE)) * 0.1).astype(np.float32)
    yield PlannedSegment(ANCHOR, sess, next_id(), noise, "直播间，秒杀开始！", "zh", 0.9,
                         planted="noise_plausible_label")
    t = np.arange(int(2.0 * SAMPLE_RATE)) / SAMPLE_RATE
    hum = (0.05 * np.sin(2 * np.pi * 50 * t) + 0.002 * rng.standard_normal(t.size)).astype(np.float32)
    yield PlannedSegment(ANCHOR, sess, next_id(), hum, "The checkout link is ready.", "en", 0.9,
                         planted="hum_plausible_label")
    yield PlannedSegment(ANCHOR, sess, next_id(), _speech("en", "your coupon starts now", 160),
                         "The flash sale ends soon.", "en", 0.9, planted="wrong_plausible_sentence")
    # A good sentence recorded, then replayed by a reconnecting client: bit for bit, re-cut 120 ms later,
    # and re-recorded in the same session over the same stream position.
    replayed = _speech("zh", zh_sentence(ZH_SUBJECTS[1], ZH_PREDICATES[3]), 160)
    label = styled_label("zh", zh_sentence(ZH_SUBJECTS[1], ZH_PREDICATES[3]), 1)
    ref = zh_sentence(ZH_SUBJECTS[1], ZH_PREDICATES[3])
    first = SESSION_TS[0]
    yield PlannedSegment(ANCHOR, first, next_id(), replayed, label, "zh", 0.9, reference=ref,
                         good_kind="replay_original")
    yield PlannedSegment(ANCHOR, sess, next_id(), replayed, label, "zh", 0.9, planted="duplicate_exact")
    recut = np.concatenate([replayed[int(0.12 * SAMPLE_RATE):], np.zeros(int(0.08 * SAMPLE_RATE), np.float32)])
    yield PlannedSegment(ANCHOR, "20260303T100000Z", next_id(), recut, label, "zh", 0.9,
                         planted="duplicate_recut")
    overlap = replayed[int(0.2 * SAMPLE_RATE):]
    yield PlannedSegment(ANCHOR, first, next_id(), overlap, label, "zh", 0.9, planted="duplicate_overlap",
                         overlap_previous_ms=200)
    # Good but hard: must be kept.
    for kind, lang, sentence, audio in (
        ("good_noise_10db", "zh", zh_sentence(ZH_SUBJECTS[2], ZH_PREDICATES[4]), None),
        ("good_noise_5db", "en", en_sentence(EN_SUBJECTS[2], EN_PREDICATES[0]), None),
        ("good_quiet_-40db", "zh", zh_sentence(ZH_SUBJECTS[0], ZH_PREDICATES[1]), None),
        ("good_fast_300wpm", "zh", zh_sentence(ZH_SUBJECTS[1], ZH_PREDICATES[2]), None),
    ):
        speech = _speech(lang, sentence, 300 if "fast" in kind else 155)
        if kind == "good_noise_10db":
            audio = _with_noise(rng, speech, 10.0)
        elif kind == "good_noise_5db":
            audio = _with_noise(rng, speech, 5.0)
        elif kind.startswith("good_quiet"):
            audio = (speech * 0.01).astype(np.float32)
        else:
            audio = speech
        yield PlannedSegment(ANCHOR, sess, next_id(), audio, styled_label(lang, sentence, 1), lang, 0.9,
                             reference=sentence, good_kind=kind)


def wav_bytes(samples: np.ndarray) -> bytes:
    """16 kHz / 16-bit / mono WAV bytes, as the runtime's recorder writes them."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


@dataclass
class SyntheticCorpus:
    """What was written, for tests: planted defects and golden references by segment id."""

    planted: dict[str, str]
    golden_ids: list[str]
    training_ids: list[str]
    references: dict[str, str]
    segments: int
    good_kinds: dict[str, str] = field(default_factory=dict)  # good-but-hard segments by id


def write_corpus(
    store: Store, seed: int = 7, model_name: str = "tiny", model_version: str = "base", hard_cases: bool = False
) -> SyntheticCorpus:
    """Record the synthetic corpus into ``store`` as the runtime's recorder would, plus the golden file.

    Segments of a session are laid end to end (start/end in ms from the session start).
    """
    writers: dict[tuple[str, str], AsrPartWriter] = {}
    clock: dict[tuple[str, str], int] = {}
    last_start: dict[tuple[str, str], int] = {}
    corpus = SyntheticCorpus(planted={}, golden_ids=[], training_ids=[], references={}, segments=0)
    golden_lines: list[str] = []
    for planned in plan_corpus(seed, hard_cases):
        session = (planned.anchor_id, planned.session_ts)
        start = clock.get(session, 0)
        if planned.overlap_previous_ms is not None:
            start = last_start.get(session, 0) + planned.overlap_previous_ms
        end = start + round(len(planned.audio) * 1000 / SAMPLE_RATE)
        last_start[session] = start
        clock[session] = max(clock.get(session, 0), end + 300)
        audio_key = raw_segment_key(planned.anchor_id, planned.session_ts, planned.segment_id)
        info = store.put(audio_key, wav_bytes(planned.audio))
        record = SegmentRecord(
            anchor_id=planned.anchor_id, session_ts=planned.session_ts, segment_id=planned.segment_id,
            start_ms=start, end_ms=end, text=planned.text, lang=planned.lang, emotion="NEUTRAL",
            event="Speech", confidence=round(planned.confidence, 3), model_name=model_name,
            model_version=model_version, audio_key=audio_key, audio_sha256=info.sha256 or "",
        )
        if session not in writers:
            writers[session] = AsrPartWriter(store.put, planned.anchor_id, planned.session_ts, batch_size=16)
        writers[session].add(record)
        corpus.segments += 1
        if planned.planted:
            corpus.planted[planned.segment_id] = planned.planted
        elif planned.extra.get("golden"):
            corpus.golden_ids.append(planned.segment_id)
            golden_lines.append(dataclasses.replace(record, text=planned.reference).to_json_line())
        else:
            corpus.training_ids.append(planned.segment_id)
        if planned.good_kind:
            corpus.good_kinds[planned.segment_id] = planned.good_kind
        if planned.reference:
            corpus.references[planned.segment_id] = planned.reference
    for writer in writers.values():
        writer.flush()
    store.put(GOLDEN_KEY, "".join(golden_lines).encode("utf-8"))
    return corpus


def corpus_summary(corpus: SyntheticCorpus) -> str:
    """A one-line JSON summary (printed by the CLI)."""
    return json.dumps(
        {"segments": corpus.segments, "planted": len(corpus.planted), "golden": len(corpus.golden_ids),
         "training": len(corpus.training_ids)}
    )
