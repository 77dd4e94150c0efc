"""The simulated streamers' scripts: who says what, when, in which language — and the alignment of the
runtime's finals back to those lines (the demo's "reviewed transcripts").

The vocabulary is the trainer's synthetic live-shopping domain (直播间, 秒杀, 优惠券 / flash sale, coupon,
checkout link): words the tiny base model has never heard, so its live transcripts of them are wrong.
Pseudo-labels from a model that gets the words wrong cannot teach it those words; in production a small
human-checked set fixes that. Here the streamers' scripts play the human reviewers: every recorded segment
whose audio lines up with a script line gets that line as its reviewed label, and segments that line up
with nothing are dropped (a reviewer would discard them). The held-out sentences are never streamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from senseops_trainer import synthetic

# Silence between lines: longer than the runtime's VAD end-of-segment silence, so each line is one segment.
GAP_S = 1.2
LEAD_IN_S = 0.5


@dataclass(frozen=True)
class Streamer:
    """One simulated streamer: an anchor id (a consented token of its own) and the lines it speaks."""

    anchor_id: str
    lang: str  # "zh" | "en"
    speed_wpm: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class ScriptLine:
    """Where a script line sits in the streamer's audio (ms from the start of the stream)."""

    text: str
    start_ms: int
    end_ms: int


def streamers(rounds: int = 1) -> list[Streamer]:
    """The demo's streamers: two Mandarin, one English, each line at its own speaking rate.

    Together they speak every training sentence of the synthetic domain at both of its speeds (the same
    material the trainer's own end-to-end test learns from); ``rounds`` repeats the script."""
    zh = [s for lang, s in synthetic.training_sentences() if lang == "zh"]
    en = [s for lang, s in synthetic.training_sentences() if lang == "en"]
    slow, fast = synthetic.SPEEDS_WPM
    return [
        Streamer("live-zh-a", "zh", slow, tuple(zh * rounds)),
        Streamer("live-zh-b", "zh", fast, tuple(zh * rounds)),
        Streamer("live-en-a", "en", slow, tuple(en * rounds)),
        Streamer("live-en-b", "en", fast, tuple(en * rounds)),
    ]


def held_out() -> list[tuple[str, str]]:
    """(lang, sentence) pairs of the held-out set: combinations no streamer ever says."""
    return synthetic.golden_sentences()


def layout(durations_ms: Sequence[int], texts: Sequence[str], lead_in_s: float = LEAD_IN_S,
           gap_s: float = GAP_S) -> list[ScriptLine]:
    """Place lines of the given durations one after another with a silence before each."""
    if len(durations_ms) != len(texts):
        raise ValueError(f"{len(texts)} lines but {len(durations_ms)} durations")
    lines, clock = [], round(lead_in_s * 1000)
    for text, duration in zip(texts, durations_ms, strict=True):
        lines.append(ScriptLine(text, clock, clock + duration))
        clock += duration + round(gap_s * 1000)
    return lines


def overlap_ms(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Length of the intersection of two [start, end) intervals in ms (0 when disjoint)."""
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def align(script: Sequence[ScriptLine], segment: tuple[int, int], min_cover: float = 0.6) -> ScriptLine | None:
    """The script line a recorded segment is: the line it overlaps most, if that overlap covers at least
    ``min_cover`` of the line (a segment that holds half a line, or two lines, is not a clean label)."""
    best = max(script, key=lambda line: overlap_ms((line.start_ms, line.end_ms), segment), default=None)
    if best is None:
        return None
    covered = overlap_ms((best.start_ms, best.end_ms), segment) / max(1, best.end_ms - best.start_ms)
    others = [line for line in script if line is not best
              and overlap_ms((line.start_ms, line.end_ms), segment) > 0.3 * (line.end_ms - line.start_ms)]
    return best if covered >= min_cover and not others else None
