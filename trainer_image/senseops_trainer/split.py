"""Train/validation split and the golden (human-verified) hold-out: pure and deterministic.

Validation must measure sentences the model did not train on, otherwise it flatters: the same sentence
recorded twice (another speed, another day) would sit on both sides. So the split works on *sentence
groups*: segments with the same normalised text form one group, and a near-duplicate sentence (a
unit-level edit distance of at most 20 % of the longer one, e.g. one character changed in a
five-character sentence) joins the group of the first sentence it nearly repeats. A group's side is
decided by a hash of its key (its leading sentence), so reruns and added data keep existing sentences
on their side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from senseops_common.text import normalize_text, scoring_units
from senseops_trainer.segments import Segment

NEAR_DUPLICATE_MAX_EDIT_SHARE = 0.2
_BLOCK_UNITS = 2  # near-duplicates are looked for among sentences sharing their first or last 2 units


@dataclass
class SplitResult:
    """The three sets, the ids dropped from training because a golden sentence would leak, and how the
    sentences were grouped."""

    train: list[Segment] = field(default_factory=list)
    val: list[Segment] = field(default_factory=list)
    golden: list[Segment] = field(default_factory=list)
    leaked_golden_text: list[str] = field(default_factory=list)
    sentence_groups: int = 0
    distinct_sentences: int = 0
    near_duplicate_sentences: int = 0  # distinct sentences merged into another sentence's group
    repeated_segments: int = 0  # segments whose exact sentence another segment also has
    val_groups: int = 0
    largest_group_segments: int = 0  # a huge group makes the split lumpy (templated sentences)


def hash_fraction(key: str, salt: str = "") -> float:
    """A stable number in [0, 1) for ``key`` (sha256, so independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two unit sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def near_duplicates(a: Sequence[str], b: Sequence[str], max_share: float = NEAR_DUPLICATE_MAX_EDIT_SHARE) -> bool:
    """True when two sentences differ by at most ``max_share`` of the longer one's units."""
    longest = max(len(a), len(b))
    if longest == 0 or abs(len(a) - len(b)) > max_share * longest:
        return False
    return edit_distance(a, b) <= max_share * longest


def _unit_string(units: Sequence[str], vocabulary: dict[str, str]) -> str:
    # One character per unit, so a C string-distance routine measures unit-level edits: single-character
    # units (CJK characters) stand for themselves, longer ones (words) get a private-use character.
    out = []
    for unit in units:
        if len(unit) == 1:
            out.append(unit)
        else:
            out.append(vocabulary.setdefault(unit, chr(0xF0000 + len(vocabulary))))
    return "".join(out)


def group_sentences(texts: Iterable[str]) -> dict[str, str]:
    """Map each distinct normalised sentence to its group key.

    Leader clustering, in sorted order: a sentence joins the group of the closest leader (among leaders
    sharing its first or last two units) that it nearly duplicates, else it leads a new group (its own
    key). Not transitive, so a chain of one-character edits cannot weld unrelated sentences into one
    giant group. The distance search runs in rapidfuzz's C code (10,000 sentences in about a second)."""
    distinct = sorted(set(texts))
    vocabulary: dict[str, str] = {}
    groups: dict[str, str] = {}
    blocks: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}  # key -> (leader strings, leader texts)
    for text in distinct:
        u = scoring_units(text)
        as_string = _unit_string(u, vocabulary)
        keys = sorted({("^", *u[:_BLOCK_UNITS]), ("$", *u[-_BLOCK_UNITS:])})
        # The longer of two near-duplicates is at most len/(1 - share) units long.
        cutoff = int(NEAR_DUPLICATE_MAX_EDIT_SHARE * len(u) / (1 - NEAR_DUPLICATE_MAX_EDIT_SHARE))
        best: tuple[int, str] | None = None
        for key in keys:
            strings, leaders = blocks.get(key, ([], []))
            if not strings:
                continue
            found = process.extractOne(as_string, strings, scorer=Levenshtein.distance, score_cutoff=cutoff)
            if found is not None:
                leader = leaders[found[2]]
                if near_duplicates(scoring_units(leader), u) and (best is None or found[1] < best[0]):
                    best = (int(found[1]), leader)
        if best is not None:
            groups[text] = best[1]
            continue
        groups[text] = text
        for key in keys:
            strings, leaders = blocks.setdefault(key, ([], []))
            strings.append(as_string)
            leaders.append(text)
    return groups


def split_segments(
    segments: Sequence[Segment],
    val_fraction: float,
    golden: Iterable[Segment] = (),
    salt: str = "senseops",
) -> SplitResult:
    """Split ``segments`` into train/val by sentence group and keep ``golden`` out of both.

    A segment whose id is golden, or whose normalised text equals a golden sentence, never enters
    training or validation: the golden set measures generalisation to sentences the model never saw.
    No normalised sentence (nor a near-duplicate of one) is on both sides. At least one group goes to
    validation when there are two or more (FunASR needs a non-empty list).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    golden_list = list(golden)
    golden_ids = {g.segment_id for g in golden_list}
    golden_texts = {normalize_text(g.text) for g in golden_list}
    result = SplitResult(golden=golden_list)
    usable: list[tuple[Segment, str]] = []
    for seg in segments:
        if seg.segment_id in golden_ids:
            continue
        text = normalize_text(seg.text)
        if text in golden_texts:
            result.leaked_golden_text.append(seg.segment_id)
            continue
        usable.append((seg, text))
    groups = group_sentences(text for _, text in usable)
    keys = sorted(set(groups.values()))
    val_keys = {k for k in keys if hash_fraction(k, salt) < val_fraction}
    if not val_keys and len(keys) >= 2 and val_fraction > 0:
        # Tiny sets: the group with the smallest hash goes to validation, so the choice is still deterministic.
        val_keys = {min(keys, key=lambda k: hash_fraction(k, salt))}
    for seg, text in usable:
        (result.val if groups[text] in val_keys else result.train).append(seg)
    counts: dict[str, int] = {}
    for _, text in usable:
        counts[text] = counts.get(text, 0) + 1
    result.sentence_groups = len(keys)
    result.distinct_sentences = len(groups)
    result.near_duplicate_sentences = len(groups) - len(keys)
    result.repeated_segments = sum(n for n in counts.values() if n > 1)
    result.val_groups = len(val_keys)
    sizes: dict[str, int] = {}
    for _, text in usable:
        sizes[groups[text]] = sizes.get(groups[text], 0) + 1
    result.largest_group_segments = max(sizes.values(), default=0)
    return result
