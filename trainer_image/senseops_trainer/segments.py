"""The trainer's view of one recorded segment (one line of ``asr/{anchor_id}/{ts}.jsonl``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Segment:
    """A recorded segment: where its audio is, what the live model said about it, and when.

    ``text`` is the pseudo-label (or the human label for golden segments). ``redecoded_text`` is filled
    only when the optional stability check decodes the audio a second time.
    """

    segment_id: str
    anchor_id: str
    session_ts: str
    audio_key: str
    text: str
    start_ms: int
    end_ms: int
    lang: str = ""
    confidence: float = 1.0
    emotion: str = ""
    event: str = ""
    model_version: str = ""
    recorded_at: float = 0.0  # unix seconds of the segment's end; the time window is applied on this
    redecoded_text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return max(0, self.end_ms - self.start_ms) / 1000.0

    def with_text(self, text: str) -> Segment:
        """A copy with a different transcript (normalisation)."""
        return replace(self, text=text)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (round-trips through :meth:`from_json`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        """Rebuild a segment written by :meth:`to_json`; unknown keys go to ``extra``."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        return cls(**kwargs, extra=extra)
