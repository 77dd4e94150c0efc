"""Train/validation split and the golden (human-verified) hold-out: pure and deterministic.

A segment's side is decided by a hash of its id, so reruns and added data never move an existing segment
from train to validation (which would leak validation audio into a resumed training run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from senseops_common.text import normalize_text
from senseops_trainer.segments import Segment


@dataclass
class SplitResult:
    """The three sets, plus the ids dropped from training because a golden sentence would leak."""

    train: list[Segment] = field(default_factory=list)
    val: list[Segment] = field(default_factory=list)
    golden: list[Segment] = field(default_factory=list)
    leaked_golden_text: list[str] = field(default_factory=list)


def hash_fraction(key: str, salt: str = "") -> float:
    """A stable number in [0, 1) for ``key`` (sha256, so independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_segments(
    segments: Sequence[Segment],
    val_fraction: float,
    golden: Iterable[Segment] = (),
    salt: str = "senseops",
) -> SplitResult:
    """Split ``segments`` into train/val by id hash and keep ``golden`` out of both.

    A segment whose id is golden, or whose normalised text equals a golden sentence, never enters
    training or validation: the golden set measures generalisation to sentences the model never saw.
    At least one segment goes to validation when there are two or more (FunASR needs a non-empty list).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    golden_list = list(golden)
    golden_ids = {g.segment_id for g in golden_list}
    golden_texts = {normalize_text(g.text) for g in golden_list}
    result = SplitResult(golden=golden_list)
    for seg in segments:
        if seg.segment_id in golden_ids:
            continue
        if normalize_text(seg.text) in golden_texts:
            result.leaked_golden_text.append(seg.segment_id)
            continue
        side = result.val if hash_fraction(seg.segment_id, salt) < val_fraction else result.train
        side.append(seg)
    if not result.val and len(result.train) >= 2 and val_fraction > 0:
        # Tiny sets: move the train segment with the smallest hash so the choice is still deterministic.
        pick = min(result.train, key=lambda s: hash_fraction(s.segment_id, salt))
        result.train.remove(pick)
        result.val.append(pick)
    return result
