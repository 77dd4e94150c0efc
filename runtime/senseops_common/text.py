"""THE text normalisation of SenseOps, and the error rates computed on top of it.

The runtime (transcripts it stores), the trainer (training targets) and the evaluation (CER/WER) all call
:func:`normalize_text` so that a model is never scored against text that was cleaned differently from the
text it was trained on. Steps, in order and why:

1. strip SenseVoice tags (``<|zh|><|NEUTRAL|>…``) — they are model metadata, not words;
2. Unicode NFKC — folds full-width Latin letters/digits/punctuation to half width (``ＡＢＣ１２３`` → ``ABC123``);
3. OpenCC traditional → simplified — the tokenizer and the references are simplified Chinese;
4. lower-case — English casing is not something the model is scored on;
5. punctuation → space (apostrophes inside words are kept: ``don't``) — pseudo-labels are trained
   without ITN (``<|woitn|>``), so punctuation is noise for both training and scoring;
6. profanity masking from a configurable list (whole words for Latin terms, substrings for CJK);
7. whitespace: collapsed, and removed between two CJK characters (Chinese has no word spaces).

Scoring (:func:`error_rate`) splits normalised text into *units*: every CJK character is a unit and every
Latin word is a unit, so a Chinese reference gives CER, an English one WER and mixed speech a mixed
error rate — one number per set, computed with jiwer.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from senseops_common.sensevoice_tags import strip_tags

# A small default list; deployments name their own file (one term per line) in SENSEOPS_PROFANITY_LIST.
DEFAULT_PROFANITY: tuple[str, ...] = ("fuck", "shit", "bitch", "傻逼", "操你妈", "他妈的")
DEFAULT_MASK_CHAR = "*"

# CJK Unified Ideographs (+ extension A, compatibility ideographs), kana and hangul: one unit per character.
_CJK_CLASS = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_CHAR_RE = re.compile(f"[{_CJK_CLASS}]")
_SPACE_BETWEEN_CJK_RE = re.compile(f"(?<=[{_CJK_CLASS}])\\s+(?=[{_CJK_CLASS}])")
_UNIT_RE = re.compile(f"[{_CJK_CLASS}]|[^\\s{_CJK_CLASS}]+")
_WORD_APOSTROPHE_RE = re.compile(r"(?<=\w)'(?=\w)")
_APOSTROPHE_PLACEHOLDER = "\u0000"


@functools.lru_cache(maxsize=1)
def _t2s_converter() -> object:
    import opencc

    for config in ("t2s", "t2s.json"):
        try:
            return opencc.OpenCC(config)
        except Exception:  # the two OpenCC bindings name their configs differently
            continue
    raise RuntimeError("OpenCC could not load its t2s configuration; reinstall the opencc package")


def to_simplified(text: str) -> str:
    """Convert traditional Chinese characters to simplified ones with OpenCC (other text unchanged)."""
    if not _CJK_CHAR_RE.search(text):
        return text  # OpenCC is the slowest step; skip it for Latin-only text
    converter = _t2s_converter()
    return str(converter.convert(text))  # type: ignore[attr-defined]


def _is_punctuation(char: str) -> bool:
    # P* = punctuation, S* = symbols (currency, math, emoji): neither is spoken as a word here.
    return unicodedata.category(char)[0] in "PS"


def strip_punctuation(text: str) -> str:
    """Replace punctuation and symbols with spaces, keeping apostrophes inside words (``don't``)."""
    protected = _WORD_APOSTROPHE_RE.sub(_APOSTROPHE_PLACEHOLDER, text)
    cleaned = "".join(" " if _is_punctuation(c) else c for c in protected)
    return cleaned.replace(_APOSTROPHE_PLACEHOLDER, "'")


@dataclass(frozen=True)
class ProfanityMasker:
    """Masks listed terms with a mask character, one mask character per masked character."""

    terms: tuple[str, ...] = DEFAULT_PROFANITY
    mask_char: str = DEFAULT_MASK_CHAR

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        parts = []
        # Longest first so "操你妈" wins over a shorter overlapping term.
        for term in sorted({t.strip().lower() for t in self.terms if t.strip()}, key=len, reverse=True):
            escaped = re.escape(term)
            parts.append(rf"\b{escaped}\b" if term.isascii() else escaped)
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def mask(self, text: str) -> str:
        """Return ``text`` with every listed term replaced by mask characters of the same length."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.mask_char * len(m.group(0)), text)


def load_profanity_list(path: str | Path) -> tuple[str, ...]:
    """Read a profanity list: one term per line, ``#`` comments and blank lines ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


@dataclass(frozen=True)
class NormalizeOptions:
    """Switches for :func:`normalize_text`; the defaults are what training and scoring use."""

    simplify: bool = True
    lowercase: bool = True
    strip_punctuation: bool = True
    masker: ProfanityMasker | None = ProfanityMasker()


PROFANITY_LIST_ENV = "SENSEOPS_PROFANITY_LIST"


def options_from_env(env: Mapping[str, str] | None = None) -> NormalizeOptions:
    """Default options, with the profanity list read from the file named by ``SENSEOPS_PROFANITY_LIST``
    when it is set (one term per line) — runtime and trainer pods mount the same ConfigMap there."""
    env = os.environ if env is None else env
    path = env.get(PROFANITY_LIST_ENV)
    if not path:
        return NormalizeOptions()
    return NormalizeOptions(masker=ProfanityMasker(load_profanity_list(path)))


DEFAULT_OPTIONS = options_from_env()


def normalize_text(text: str, options: NormalizeOptions = DEFAULT_OPTIONS) -> str:
    """Normalise one transcript (see the module docstring for the steps and why)."""
    out = strip_tags(text)
    out = unicodedata.normalize("NFKC", out)
    if options.simplify:
        out = to_simplified(out)
    if options.lowercase:
        out = out.lower()
    if options.strip_punctuation:
        out = strip_punctuation(out)
    if options.masker is not None:
        out = options.masker.mask(out)
    out = " ".join(out.split())
    return _SPACE_BETWEEN_CJK_RE.sub("", out)


def scoring_units(text: str) -> list[str]:
    """Split normalised text into scoring units: one per CJK character, one per other word
    (a run of mask characters is one unit on both sides, so masking never changes an error count)."""
    return _UNIT_RE.findall(text)


@dataclass(frozen=True)
class ErrorRate:
    """Edit-distance totals over a set of utterances; ``rate`` is errors / reference units."""

    substitutions: int
    deletions: int
    insertions: int
    reference_units: int
    utterances: int

    @property
    def errors(self) -> int:
        """Total edits."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors per reference unit (CER for Chinese, WER for English); 0 for an empty reference set."""
        return self.errors / self.reference_units if self.reference_units else 0.0


def error_rate(
    references: Sequence[str], hypotheses: Sequence[str], options: NormalizeOptions = DEFAULT_OPTIONS
) -> ErrorRate:
    """CER/WER (mixed units, see :func:`scoring_units`) of ``hypotheses`` against ``references``.

    Both sides go through :func:`normalize_text` with the same ``options``. An empty reference counts
    every hypothesis unit as an insertion (jiwer refuses empty references, so they are handled here).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses; pass one of each")
    refs: list[str] = []
    hyps: list[str] = []
    insertions = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref_units = scoring_units(normalize_text(ref, options))
        hyp_units = scoring_units(normalize_text(hyp, options))
        if not ref_units:
            insertions += len(hyp_units)
            continue
        refs.append(" ".join(ref_units))
        hyps.append(" ".join(hyp_units))
    subs = dels = ref_total = 0
    if refs:
        import jiwer  # trainer-only dependency: imported here so the runtime image need not carry it

        out = jiwer.process_words(refs, hyps)
        subs, dels, insertions = out.substitutions, out.deletions, insertions + out.insertions
        ref_total = out.hits + out.substitutions + out.deletions
    return ErrorRate(subs, dels, insertions, ref_total, len(references))


def normalize_many(texts: Iterable[str], options: NormalizeOptions = DEFAULT_OPTIONS) -> list[str]:
    """:func:`normalize_text` over many texts (convenience for batch stages)."""
    return [normalize_text(t, options) for t in texts]
