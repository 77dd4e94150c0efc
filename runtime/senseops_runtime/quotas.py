"""Per-subject stream limits, audio budgets and metering.

:func:`admit_stream` and :func:`audio_allowance` are pure decisions; :class:`QuotaLedger` keeps the
in-memory counts of one replica (budgets are per replica and per UTC day).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class QuotaPolicy:
    """Limits applied to every subject."""

    max_streams_per_subject: int
    audio_seconds_per_day: float


@dataclass(frozen=True)
class Admitted:
    """The stream may start; ``remaining_s`` is the audio it may still send today. ``lease`` names the
    stream slot for :meth:`QuotaBackend.close_stream` (shared backends use it; in memory it is empty)."""

    remaining_s: float
    lease: str = ""


@dataclass(frozen=True)
class QuotaRefusal:
    """Why a stream or request was refused; safe to show to the client."""

    reason: str


class QuotaUnavailable(Exception):
    """The shared quota backend cannot be reached and the policy is to fail closed; callers answer
    503 / close 1013 with this message."""


class QuotaBackend(Protocol):
    """Where stream slots, budgets and metering live: :class:`QuotaLedger` (in memory, one replica) or
    :class:`senseops_runtime.quota_redis.RedisQuotaLedger` (shared by every replica)."""

    def open_stream(self, subject: str, day: str) -> Admitted | QuotaRefusal:
        """Admit and count a new stream, or refuse it."""
        ...

    def close_stream(self, subject: str, lease: str = "") -> None:
        """Release the slot taken by :meth:`open_stream`."""
        ...

    def charge(self, subject: str, anchor_id: str, seconds: float, day: str) -> bool:
        """Meter audio; False (nothing charged) when the budget would be exceeded."""
        ...

    def refund(self, subject: str, anchor_id: str, seconds: float, day: str) -> None:
        """Give back a charge whose audio was not transcribed."""
        ...

    def has_budget(self, subject: str, day: str) -> bool:
        """Is any audio left in the subject's budget today?"""
        ...

    def metering(self) -> list[dict[str, object]]:
        """Audio seconds per (day, subject, anchor) for the days kept."""
        ...


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


# Metering is kept for today and this many earlier days (UTC), then forgotten.
METERING_DAYS_KEPT = 1


def days_to_forget(days: set[str], today: str, keep_earlier: int = METERING_DAYS_KEPT) -> set[str]:
    """Which metering days to drop: everything but ``today`` and the ``keep_earlier`` days before it."""
    earlier = sorted(d for d in days if d < today)
    kept = set(earlier[len(earlier) - keep_earlier :]) if keep_earlier > 0 else set()
    return {d for d in days if d != today and d not in kept and d < today}


@dataclass
class QuotaLedger:
    """Thread-safe counters: open streams and audio seconds per subject, metering per day, subject, anchor.

    Old windows are forgotten: when a new UTC day is first seen, subjects with no open stream and no use
    today are dropped, and metering older than :data:`METERING_DAYS_KEPT` earlier days is discarded, so
    memory follows the active subjects, not every subject ever seen."""

    policy: QuotaPolicy
    _usage: dict[str, _Usage] = field(default_factory=lambda: defaultdict(_Usage))
    _metered: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _day_seen: str = ""

    def _today(self, subject: str, day: str) -> _Usage:
        if day > self._day_seen:
            self._day_seen = day
            self._forget_old(day)
        usage = self._usage[subject]
        if usage.day != day:
            usage.day, usage.used_s_today = day, 0.0
        return usage

    def _forget_old(self, today: str) -> None:
        for subject in [s for s, u in self._usage.items() if u.open_streams == 0 and u.day != today]:
            del self._usage[subject]
        stale = days_to_forget({day for day, _, _ in self._metered}, today)
        for key in [k for k in self._metered if k[0] in stale]:
            del self._metered[key]

    @property
    def tracked_subjects(self) -> int:
        """Subjects currently held in memory (for tests and a gauge)."""
        with self._lock:
            return len(self._usage)

    def open_stream(self, subject: str, day: str) -> Admitted | QuotaRefusal:
        """Admit and count a new stream, or refuse it."""
        with self._lock:
            usage = self._today(subject, day)
            verdict = admit_stream(self.policy, usage.open_streams, usage.used_s_today)
            if isinstance(verdict, Admitted):
                usage.open_streams += 1
            return verdict

    def close_stream(self, subject: str, lease: str = "") -> None:
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
            self._metered[(day, subject, anchor_id)] += seconds
            return True

    def refund(self, subject: str, anchor_id: str, seconds: float, day: str) -> None:
        """Give back a :meth:`charge` whose audio was not transcribed (overload, engine failure)."""
        with self._lock:
            usage = self._today(subject, day)
            usage.used_s_today = max(0.0, usage.used_s_today - seconds)
            key = (day, subject, anchor_id)
            left = self._metered.get(key, 0.0) - seconds
            if left > 1e-9:
                self._metered[key] = left
            else:
                self._metered.pop(key, None)

    def has_budget(self, subject: str, day: str) -> bool:
        """Is any audio left in the subject's budget today?"""
        with self._lock:
            return self._today(subject, day).used_s_today < self.policy.audio_seconds_per_day

    def metering(self) -> list[dict[str, object]]:
        """Audio seconds per (day, subject, anchor) for the days still kept, for the usage endpoint."""
        with self._lock:
            return [
                {"day": d, "subject": s, "anchor_id": a, "audio_seconds": round(v, 3)}
                for (d, s, a), v in sorted(self._metered.items())
            ]
