"""Pseudo-label quality rules: pure functions from (segment, thresholds) to "keep" or a removal reason.

Each rule looks at one aspect of a segment and returns the rule's name when the segment must go, or
``None``. :func:`apply_filters` runs the rules in a fixed order and attributes each removed segment to the
*first* rule that rejected it, so the per-rule counts add up to the number removed.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from senseops_common.text import error_rate, normalize_text, scoring_units
from senseops_trainer.segments import Segment

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_RE = re.compile(r"[a-zA-Z]")


@functools.lru_cache(maxsize=8192)
def _normalized(text: str) -> str:
    # Several rules look at the same normalised text; normalise each transcript once.
    return normalize_text(text)


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds for the quality rules (FineTuneJob ``spec.dataset.filters`` maps onto this)."""

    min_confidence: float = 0.6
    min_duration_s: float = 0.5
    max_duration_s: float = 30.0
    # Scoring units (CJK characters / Latin words) per second; espeak and people both sit well inside.
    min_units_per_s: float = 0.7
    max_units_per_s: float = 12.0
    # A single n-gram (n = 1..3) repeated this often, and covering this share of the text, is garbage
    # (the classic "好的好的好的好的" hallucination).
    max_ngram_repeats: int = 4
    max_repeat_coverage: float = 0.5
    languages: tuple[str, ...] = ("zh", "en")
    # Stability: the second decode must agree with the pseudo-label to within this error rate.
    max_redecode_error: float = 0.2
    stability_check: bool = False


def rule_empty_text(seg: Segment, cfg: FilterConfig) -> str | None:
    """Nothing left after normalisation (silence decoded as tags or punctuation only)."""
    return "empty_text" if not scoring_units(_normalized(seg.text)) else None


def rule_confidence(seg: Segment, cfg: FilterConfig) -> str | None:
    """The live model was unsure of its own output."""
    return "low_confidence" if seg.confidence < cfg.min_confidence else None


def rule_duration(seg: Segment, cfg: FilterConfig) -> str | None:
    """Too short to carry a word, or too long for one training sample."""
    if seg.duration_s < cfg.min_duration_s:
        return "too_short"
    if seg.duration_s > cfg.max_duration_s:
        return "too_long"
    return None


def max_ngram_repeat(units: list[str], n: int) -> int:
    """How often the most frequent n-gram of ``units`` occurs (0 when the text is shorter than n)."""
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return max(Counter(grams).values(), default=0)


def rule_repetition(seg: Segment, cfg: FilterConfig) -> str | None:
    """One n-gram repeated many times and covering most of the text: a decoding loop."""
    units = scoring_units(_normalized(seg.text))
    if not units:
        return None
    for n in (1, 2, 3):
        count = max_ngram_repeat(units, n)
        if count >= cfg.max_ngram_repeats and count * n / len(units) >= cfg.max_repeat_coverage:
            return "repeated_ngrams"
    return None


def rule_rate(seg: Segment, cfg: FilterConfig) -> str | None:
    """Units per second far from speech: text that the audio cannot contain (or hardly any text)."""
    if seg.duration_s <= 0:
        return None  # the duration rule reports this one
    rate = len(scoring_units(_normalized(seg.text))) / seg.duration_s
    if rate < cfg.min_units_per_s or rate > cfg.max_units_per_s:
        return "rate_outlier"
    return None


def text_script(text: str) -> str:
    """``zh`` when the text has CJK characters and no Latin words, ``en`` for the reverse, else ``mixed``
    (or ``""`` for neither)."""
    has_cjk, has_latin = bool(_CJK_RE.search(text)), bool(_LATIN_RE.search(text))
    if has_cjk and not has_latin:
        return "zh"
    if has_latin and not has_cjk:
        return "en"
    return "mixed" if has_cjk else ""


def rule_language(seg: Segment, cfg: FilterConfig) -> str | None:
    """The model's language tag is not one we train on, or the text's script contradicts it."""
    lang = seg.lang.strip("<|>").lower()
    if lang not in cfg.languages:
        return "language_mismatch"
    script = text_script(_normalized(seg.text))
    if script == "mixed":
        return None  # code-switching is real speech; the tag names the main language only
    if (lang == "zh" and script == "en") or (lang == "en" and script == "zh"):
        return "language_mismatch"
    return None


def rule_stability(seg: Segment, cfg: FilterConfig) -> str | None:
    """A second, independent decode disagrees with the pseudo-label (only when the check is on)."""
    if not cfg.stability_check or seg.redecoded_text is None:
        return None
    disagreement = error_rate([seg.text], [seg.redecoded_text]).rate
    return "unstable" if disagreement > cfg.max_redecode_error else None


Rule = Callable[[Segment, FilterConfig], "str | None"]

# Cheap, certain rules first so the counts blame the most obvious problem.
RULES: tuple[Rule, ...] = (
    rule_empty_text,
    rule_duration,
    rule_confidence,
    rule_language,
    rule_repetition,
    rule_rate,
    rule_stability,
)

RULE_NAMES: tuple[str, ...] = (
    "empty_text",
    "too_short",
    "too_long",
    "low_confidence",
    "language_mismatch",
    "repeated_ngrams",
    "rate_outlier",
    "unstable",
)


def first_rejection(seg: Segment, cfg: FilterConfig) -> str | None:
    """The name of the first rule that rejects ``seg``, or ``None`` to keep it."""
    for rule in RULES:
        reason = rule(seg, cfg)
        if reason is not None:
            return reason
    return None


@dataclass
class FilterResult:
    """Kept segments, removed segment ids by reason, and per-rule counts (every rule listed, 0 included)."""

    kept: list[Segment] = field(default_factory=list)
    removed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Segments removed per rule."""
        return {name: len(self.removed.get(name, [])) for name in RULE_NAMES}

    @property
    def kept_hours(self) -> float:
        """Audio hours that survived the filters."""
        return sum(s.duration_s for s in self.kept) / 3600.0


def apply_filters(segments: Iterable[Segment], cfg: FilterConfig) -> FilterResult:
    """Run every rule over ``segments`` (order preserved in ``kept``)."""
    result = FilterResult()
    for seg in segments:
        reason = first_rejection(seg, cfg)
        if reason is None:
            result.kept.append(seg)
        else:
            result.removed.setdefault(reason, []).append(seg.segment_id)
    return result
