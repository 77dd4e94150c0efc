"""The "reviewed transcripts" step and the held-out set — where the demo's correct labels come from.

The runtime records what the live (base) model heard; for domain words it has never learnt that text is
wrong, and training on it would teach the model its own mistakes. In production a person reviews a sample
of segments; here the streamers' scripts play that reviewer: a recorded segment that lines up with a
script line gets the line as its text (confidence 1.0, the streamer's language), a segment that lines up
with none is dropped from the index. The live model's original lines are kept under ``review/live/``.

The held-out set is speech no streamer said, written as a human-verified golden file the trainer's
evaluation gate reads (the same form as the trainer's synthetic corpus).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from senseops_common.layout import SegmentRecord, raw_segment_key
from senseops_common.speech import ENGLISH, MANDARIN, synthesize
from senseops_common.storage import StoreBase
from senseops_trainer.synthetic import wav_bytes

REVIEWED_CONFIDENCE = 1.0
LIVE_COPY_PREFIX = "review/live/"
HELD_OUT_ANCHOR = "held-out"
HELD_OUT_KEY = "golden/held-out.jsonl"


@dataclass(frozen=True)
class ReviewedPart:
    """One asr/ part after review: the new JSONL text and what happened to its lines."""

    text: str
    kept: int
    dropped: int
    changed: int  # kept lines whose text the review corrected


def review_part(jsonl: str, labels: Mapping[str, str], languages: Mapping[str, str]) -> ReviewedPart:
    """Apply the reviewed labels (segment_id → text) to one part; ``languages`` maps anchor → language."""
    lines, kept, dropped, changed = [], 0, 0, 0
    for raw in jsonl.splitlines():
        if not raw.strip():
            continue
        record = SegmentRecord.from_json(raw)
        label = labels.get(record.segment_id)
        if label is None:
            dropped += 1
            continue
        kept += 1
        changed += label != record.text
        lines.append(dataclasses.replace(record, text=label, confidence=REVIEWED_CONFIDENCE,
                                         lang=languages.get(record.anchor_id, record.lang)).to_json_line())
    return ReviewedPart("".join(lines), kept, dropped, changed)


@dataclass(frozen=True)
class ReviewSummary:
    """Totals of one review pass."""

    parts: int
    kept: int
    dropped: int
    changed: int
    seconds: float  # audio of the kept segments


def apply_review(store: StoreBase, labels: Mapping[str, str], languages: Mapping[str, str]) -> ReviewSummary:
    """Review every asr/ part of the given anchors in place (the live lines copied aside first)."""
    parts = kept = dropped = changed = 0
    seconds = 0.0
    for anchor in languages:
        for info in list(store.list(f"asr/{anchor}/")):
            original = store.get_bytes(info.key).decode()
            if not store.exists(LIVE_COPY_PREFIX + info.key):
                store.put(LIVE_COPY_PREFIX + info.key, original.encode())
            result = review_part(original, labels, languages)
            parts += 1
            kept, dropped, changed = kept + result.kept, dropped + result.dropped, changed + result.changed
            seconds += sum((SegmentRecord.from_json(line).end_ms - SegmentRecord.from_json(line).start_ms) / 1000
                           for line in result.text.splitlines())
            if result.text:
                store.put(info.key, result.text.encode())
            else:
                store.delete(info.key)
    return ReviewSummary(parts, kept, dropped, changed, round(seconds, 1))


def write_held_out(store: StoreBase, sentences: Sequence[tuple[str, str]], session_ts: str,
                   speed_wpm: int = 160) -> int:
    """Speak the held-out sentences and write them with their true text as the golden file; return how many."""
    lines, clock = [], 0
    for index, (lang, sentence) in enumerate(sentences):
        audio = synthesize(sentence, MANDARIN if lang == "zh" else ENGLISH, speed_wpm=speed_wpm)
        segment_id = f"held-{index:03d}"
        key = raw_segment_key(HELD_OUT_ANCHOR, session_ts, segment_id)
        info = store.put(key, wav_bytes(audio))
        end = clock + round(len(audio) / 16)
        lines.append(SegmentRecord(
            anchor_id=HELD_OUT_ANCHOR, session_ts=session_ts, segment_id=segment_id, start_ms=clock, end_ms=end,
            text=sentence, lang=lang, emotion="NEUTRAL", event="Speech", confidence=REVIEWED_CONFIDENCE,
            model_name="human", model_version="reviewed", audio_key=key, audio_sha256=info.sha256 or "",
        ).to_json_line())
        clock = end + 300
    store.put(HELD_OUT_KEY, "".join(lines).encode())
    return len(lines)
