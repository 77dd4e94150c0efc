"""Duplicate recordings (pure): the same speech stored twice must be trained on once.

A client that reconnects replays the audio the server had not acknowledged, so the same speech can be
recorded twice — bit for bit, or cut at slightly different boundaries by the voice-activity detector.
Three rules, checked in this order, each keeping the earliest recording (session, start, id):

* ``exact``: the same PCM samples (sha256 of the 16-bit samples, so WAV header differences do not matter);
* ``overlap``: the same anchor and session, and the two segments' sample ranges overlap by at least half
  of the shorter one (one stream position cannot hold two different utterances);
* ``fingerprint``: the same anchor, durations within 5 %, and coarse energy envelopes (10 ms frames) that
  match (correlation ≥ 0.98 at the best shift within ±200 ms): replayed audio cut at other boundaries.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DUPLICATE_RULES = ("exact", "overlap", "fingerprint")
OVERLAP_MIN_SHARE = 0.5
FINGERPRINT_MAX_DURATION_DIFF = 0.05
FINGERPRINT_MIN_CORRELATION = 0.98
FINGERPRINT_MAX_SHIFT_FRAMES = 20  # 10 ms frames: ±200 ms of boundary difference
FINGERPRINT_MIN_FRAMES = 30  # shorter clips have too little envelope to compare
MAX_SEGMENT_MS = 120_000  # no recorded segment is longer (the runtime caps segments far below this)


@dataclass(frozen=True)
class AudioItem:
    """What the duplicate rules look at for one recorded segment."""

    segment_id: str
    anchor_id: str
    session_ts: str
    start_ms: int
    end_ms: int
    pcm_sha256: str
    envelope: tuple[float, ...]  # frame levels in dB, 10 ms apart


@dataclass(frozen=True)
class Duplicate:
    """``segment_id`` repeats ``kept_id`` by ``rule``."""

    segment_id: str
    kept_id: str
    rule: str


ENVELOPE_FLOOR_DB = -90.0  # 16-bit PCM's last bit: digital silence must not dominate the envelope


def envelope(levels_db: np.ndarray) -> tuple[float, ...]:
    """The fingerprint envelope from 10 ms frame levels (dBFS), floored at the 16-bit noise floor."""
    return tuple(round(float(v), 2) for v in np.maximum(np.asarray(levels_db, dtype=np.float64), ENVELOPE_FLOOR_DB))


def pcm_sha256(samples: np.ndarray) -> str:
    """Digest of the samples as 16-bit PCM (what the recorder stores), independent of the file header."""
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


def _overlap_share(a: AudioItem, b: AudioItem) -> float:
    shorter = min(a.end_ms - a.start_ms, b.end_ms - b.start_ms)
    if shorter <= 0:
        return 0.0
    return max(0, min(a.end_ms, b.end_ms) - max(a.start_ms, b.start_ms)) / shorter


def envelope_similarity(a: Sequence[float], b: Sequence[float], max_shift: int = FINGERPRINT_MAX_SHIFT_FRAMES) -> float:
    """Best Pearson correlation of two envelopes over shifts of up to ``max_shift`` frames (0 when flat)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    best = 0.0
    for shift in range(-max_shift, max_shift + 1):
        xs, ys = (x[shift:], y) if shift >= 0 else (x, y[-shift:])
        n = min(len(xs), len(ys))
        if n < FINGERPRINT_MIN_FRAMES:
            continue
        xs, ys = xs[:n], ys[:n]
        sx, sy = xs.std(), ys.std()
        if sx < 1e-6 or sy < 1e-6:
            continue
        best = max(best, float(np.mean((xs - xs.mean()) * (ys - ys.mean())) / (sx * sy)))
    return best


def find_duplicates(items: Sequence[AudioItem]) -> list[Duplicate]:
    """Every item that repeats an earlier one, with the rule that matched (first rule wins).

    Overlaps are looked for among the same session's earlier segments, fingerprints only among the same
    anchor's segments of similar duration (a sorted index), so large selections stay fast."""
    ordered = sorted(items, key=lambda i: (i.session_ts, i.start_ms, i.segment_id))
    by_hash: dict[str, AudioItem] = {}
    by_session: dict[tuple[str, str], list[AudioItem]] = {}
    by_duration: dict[str, tuple[list[int], list[AudioItem]]] = {}
    out: list[Duplicate] = []
    for item in ordered:
        found = _match(item, by_hash, by_session, by_duration)
        if found is not None:
            out.append(Duplicate(item.segment_id, found[1].segment_id, found[0]))
            continue
        by_hash[item.pcm_sha256] = item
        by_session.setdefault((item.anchor_id, item.session_ts), []).append(item)
        keys, values = by_duration.setdefault(item.anchor_id, ([], []))
        at = bisect.bisect_left(keys, item.end_ms - item.start_ms)
        keys.insert(at, item.end_ms - item.start_ms)
        values.insert(at, item)
    return out


def _match(
    item: AudioItem,
    by_hash: dict[str, AudioItem],
    by_session: dict[tuple[str, str], list[AudioItem]],
    by_duration: dict[str, tuple[list[int], list[AudioItem]]],
) -> tuple[str, AudioItem] | None:
    if item.pcm_sha256 in by_hash:
        return "exact", by_hash[item.pcm_sha256]
    for earlier in reversed(by_session.get((item.anchor_id, item.session_ts), [])):
        if _overlap_share(earlier, item) >= OVERLAP_MIN_SHARE:
            return "overlap", earlier
        if earlier.start_ms < item.start_ms - MAX_SEGMENT_MS:
            break  # ordered by start: nothing earlier can reach this segment
    if len(item.envelope) < FINGERPRINT_MIN_FRAMES:
        return None
    keys, values = by_duration.get(item.anchor_id, ([], []))
    duration = item.end_ms - item.start_ms
    low = bisect.bisect_left(keys, duration * (1 - FINGERPRINT_MAX_DURATION_DIFF))
    high = bisect.bisect_right(keys, duration / (1 - FINGERPRINT_MAX_DURATION_DIFF))
    for earlier in values[low:high]:
        if (
            len(earlier.envelope) >= FINGERPRINT_MIN_FRAMES
            and envelope_similarity(earlier.envelope, item.envelope) >= FINGERPRINT_MIN_CORRELATION
        ):
            return "fingerprint", earlier
    return None
