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
from senseops_trainer.audio_checks import AudioStats
from senseops_trainer.segments import Segment

AUDIO_STATS_KEY = "audio_stats"  # Segment.extra key the collect stage fills from the audio


@dataclass(frozen=True)
class RateLimit:
    """Plausible label units per second of segment audio for one language, and where the numbers come from."""

    unit: str  # "char" (one per CJK character / kana / hangul block) or "word" (space-separated)
    min_per_s: float
    max_per_s: float
    source: str


# Upper limits are about 1.5x the mean *read-speech* syllable rate measured by Pellegrino, Coupe & Marsico,
# "A cross-language perspective on speech information rate", Language 87(3), 2011 (Mandarin 5.18, Japanese
# 7.84 syllables/s; English 6.19 syllables/s). A VAD segment also holds pauses, so a whole segment above
# these is text the audio cannot contain. Lower limits only drop segments with almost no text for their
# length (hallucinated fillers over long noise); they are not from a speech-rate study.
DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    "zh": RateLimit("char", 0.7, 8.0, "Mandarin 5.18 syllables/s (one character each), Pellegrino et al. 2011; x1.5"),
    "yue": RateLimit("char", 0.7, 8.0, "no measured Cantonese rate in that study: Mandarin's limit"),
    "ja": RateLimit("char", 0.7, 12.0, "Japanese 7.84 morae/s, Pellegrino et al. 2011; x1.5 (a kana or kanji "
                    "carries at least one mora, so characters/s <= morae/s)"),
    "ko": RateLimit("char", 0.7, 10.0, "no Korean rate in that study: between Mandarin and Japanese"),
    "en": RateLimit("word", 0.3, 4.5, "230 words/min is the top of natural bursts in live TV (BBC/Ofcom "
                    "subtitling research); 4.5 words/s = 270 words/min; English 6.19 syllables/s, Pellegrino 2011"),
}
# Languages without an entry use the limit of their script's unit.
FALLBACK_RATE_LIMITS = {"char": DEFAULT_RATE_LIMITS["zh"], "word": DEFAULT_RATE_LIMITS["en"]}
# Audio: stationary noise varies by < 1 dB frame to frame, speech by 20-40 dB; even speech under white noise at
# 5 dB SNR still spans ~8.6 dB (measured with espeak-ng speech, see the README's planted-case table).
DEFAULT_MIN_DYNAMIC_RANGE_DB = 6.0
DEFAULT_MIN_PEAK_DBFS = -65.0  # quieter than this everywhere is silence (16-bit PCM's LSB is -90 dBFS)

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
    # Scoring units (CJK characters / Latin words) per second. None = the language's default in
    # DEFAULT_RATE_LIMITS; a number applies to every language; a mapping {lang: number} overrides per language.
    min_units_per_s: float | dict[str, float] | None = None
    max_units_per_s: float | dict[str, float] | None = None
    # A single n-gram (n = 1..3) repeated this often, and covering this share of the text, is garbage
    # (the classic "好的好的好的好的" hallucination).
    max_ngram_repeats: int = 4
    max_repeat_coverage: float = 0.5
    languages: tuple[str, ...] = ("zh", "en")
    # Stability: the second decode must agree with the pseudo-label to within this error rate.
    max_redecode_error: float = 0.2
    stability_check: bool = False
    # Audio-side check (needs the collect stage's audio statistics; segments without them are not judged).
    audio_check: bool = True
    min_dynamic_range_db: float = DEFAULT_MIN_DYNAMIC_RANGE_DB
    min_peak_dbfs: float = DEFAULT_MIN_PEAK_DBFS

    def rate_limit(self, lang: str, text: str) -> tuple[float, float]:
        """(min, max) units per second for a segment tagged ``lang`` with normalised ``text``."""
        known = DEFAULT_RATE_LIMITS.get(lang)
        if known is None:
            known = FALLBACK_RATE_LIMITS["word" if text_script(text) == "en" else "char"]
        return (_pick(self.min_units_per_s, lang, known.min_per_s), _pick(self.max_units_per_s, lang, known.max_per_s))


def _pick(setting: float | dict[str, float] | None, lang: str, default: float) -> float:
    if setting is None:
        return default
    if isinstance(setting, dict):
        return float(setting.get(lang, default))
    return float(setting)


def segment_lang(seg: Segment) -> str:
    """The segment's language tag without SenseVoice's ``<|…|>`` brackets, lower case."""
    return seg.lang.strip("<|>").lower()


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
    """Units per second far from the language's speech rate: text the audio cannot contain (or hardly any
    text). Characters per second for Chinese/Japanese/Korean, words per second for English and other
    space-separated languages (limits and their sources: DEFAULT_RATE_LIMITS)."""
    if seg.duration_s <= 0:
        return None  # the duration rule reports this one
    text = _normalized(seg.text)
    low, high = cfg.rate_limit(segment_lang(seg), text)
    rate = len(scoring_units(text)) / seg.duration_s
    if rate < low or rate > high:
        return "rate_outlier"
    return None


def segment_audio_stats(seg: Segment) -> AudioStats | None:
    """The audio statistics the collect stage stored on the segment, if any."""
    data = seg.extra.get(AUDIO_STATS_KEY)
    return AudioStats.from_json(data) if isinstance(data, dict) else None


def rule_audio(seg: Segment, cfg: FilterConfig) -> str | None:
    """The audio holds no speech: silence, or stationary noise (hum, hiss) whose level hardly varies.

    Catches a plausible label on noise, which no text rule can see."""
    stats = segment_audio_stats(seg) if cfg.audio_check else None
    if stats is None:
        return None
    if stats.peak_dbfs < cfg.min_peak_dbfs or stats.dynamic_range_db < cfg.min_dynamic_range_db:
        return "no_speech_audio"
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
    lang = segment_lang(seg)
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
    rule_audio,
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
    "no_speech_audio",
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
