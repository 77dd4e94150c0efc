"""Per-subject stream limits, audio budgets and metering.

:func:`admit_stream` and :func:`audio_allowance` are pure decisions; :class:`QuotaLedger` keeps the
in-memory counts of one replica (budgets are per replica and per UTC day; a shared store would be needed
to enforce them across replicas, see the report).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class QuotaPolicy:
    """Limits applied to every subject."""

    max_streams_per_subject: int
    audio_seconds_per_day: float


@dataclass(frozen=True)
class Admitted:
    """The stream may start; ``remaining_s`` is the audio it may still send today."""

    remaining_s: float


@dataclass(frozen=True)
class QuotaRefusal:
    """Why a stream or request was refused; safe to show to the client."""

    reason: str


def admit_stream(policy: QuotaPolicy, open_streams: int, used_s_today: float) -> Admitted | QuotaRefusal:
    """May a subject with ``open_streams`` running and ``used_s_today`` seconds used open one more?"""
    if open_streams >= policy.max_streams_per_subject:
        return QuotaRefusal(
            f"concurrent stream limit reached ({policy.max_streams_per_subject} per subject); "
            "close another stream first"
        )
    remaining = policy.audio_seconds_per_day - used_s_today
    if remaining <= 0:
        return QuotaRefusal(
            f"daily audio budget used up ({policy.audio_seconds_per_day / 60:.1f} minutes); try again tomorrow (UTC)"
        )
    return Admitted(remaining_s=remaining)


def audio_allowance(policy: QuotaPolicy, used_s_today: float, chunk_s: float) -> bool:
    """Does a further ``chunk_s`` seconds of audio still fit into today's budget?"""
    return used_s_today + chunk_s <= policy.audio_seconds_per_day


@dataclass
class _Usage:
    open_streams: int = 0
    day: str = ""
    used_s_today: float = 0.0


@dataclass
class QuotaLedger:
    """Thread-safe counters: open streams and audio seconds per subject, metering per subject and anchor."""

    policy: QuotaPolicy
    _usage: dict[str, _Usage] = field(default_factory=lambda: defaultdict(_Usage))
    _metered: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _today(self, subject: str, day: str) -> _Usage:
        usage = self._usage[subject]
        if usage.day != day:
            usage.day, usage.used_s_today = day, 0.0
        return usage

    def open_stream(self, subject: str, day: str) -> Admitted | QuotaRefusal:
        """Admit and count a new stream, or refuse it."""
        with self._lock:
            usage = self._today(subject, day)
            verdict = admit_stream(self.policy, usage.open_streams, usage.used_s_today)
            if isinstance(verdict, Admitted):
                usage.open_streams += 1
            return verdict

    def close_stream(self, subject: str) -> None:
        """Release a stream slot taken by :meth:`open_stream`."""
        with self._lock:
            usage = self._usage[subject]
            usage.open_streams = max(0, usage.open_streams - 1)

    def charge(self, subject: str, anchor_id: str, seconds: float, day: str) -> bool:
        """Meter ``seconds`` of audio; False (and nothing charged) when the budget would be exceeded."""
        with self._lock:
            usage = self._today(subject, day)
            if not audio_allowance(self.policy, usage.used_s_today, seconds):
                return False
            usage.used_s_today += seconds
            self._metered[(subject, anchor_id)] += seconds
            return True

    def has_budget(self, subject: str, day: str) -> bool:
        """Is any audio left in the subject's budget today?"""
        with self._lock:
            return self._today(subject, day).used_s_today < self.policy.audio_seconds_per_day

    def metering(self) -> list[dict[str, object]]:
        """Audio seconds per (subject, anchor) since start, for the usage endpoint."""
        with self._lock:
            return [
                {"subject": s, "anchor_id": a, "audio_seconds": round(v, 3)}
                for (s, a), v in sorted(self._metered.items())
            ]
