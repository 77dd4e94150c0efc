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
from collections.abc import Iterator
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


def _voice(lang: str) -> str:
    return MANDARIN if lang == "zh" else ENGLISH


def _speech(lang: str, sentence: str, speed: int) -> np.ndarray:
    return synthesize(sentence, _voice(lang), speed_wpm=speed)


def plan_corpus(seed: int = 7) -> Iterator[PlannedSegment]:
    """Every segment of the synthetic corpus, deterministic for a seed (espeak-ng is deterministic)."""
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
        ANCHOR, SESSION_TS[1], next_id(), _speech("zh", zh_ref, 175), long_wrong, "zh", 0.85,
        planted="wrong_text",
    )
    yield PlannedSegment(
        ANCHOR, SESSION_TS[1], next_id(), _speech("zh", zh_ref, 150), "好的好的好的好的好的好的", "zh", 0.9,
        planted="repeats",
    )
    yield PlannedSegment(
        ANCHOR, SESSION_TS[0], next_id(), _speech("en", en_ref, 150), "直播间秒杀开始", "en", 0.88,
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
    # Outside the selection: another anchor, and an old session outside the time window.
    yield PlannedSegment(
        OTHER_ANCHOR, SESSION_TS[0], next_id(), _speech("en", en_ref, 160), en_ref, "en", 0.9,
        planted="other_anchor",
    )
    yield PlannedSegment(
        ANCHOR, OLD_SESSION_TS, next_id(), _speech("zh", zh_ref, 160), zh_ref, "zh", 0.9,
        planted="outside_window",
    )


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


def write_corpus(store: Store, seed: int = 7, model_name: str = "tiny", model_version: str = "base") -> SyntheticCorpus:
    """Record the synthetic corpus into ``store`` as the runtime's recorder would, plus the golden file.

    Segments of a session are laid end to end (start/end in ms from the session start).
    """
    writers: dict[tuple[str, str], AsrPartWriter] = {}
    clock: dict[tuple[str, str], int] = {}
    corpus = SyntheticCorpus(planted={}, golden_ids=[], training_ids=[], references={}, segments=0)
    golden_lines: list[str] = []
    for planned in plan_corpus(seed):
        session = (planned.anchor_id, planned.session_ts)
        start = clock.get(session, 0)
        end = start + round(len(planned.audio) * 1000 / SAMPLE_RATE)
        clock[session] = end + 300
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
