"""Quotas shared by every replica, in Redis: atomic (one Lua script per decision) and expiring.

==================================  ============================================================
key                                 what
==================================  ============================================================
{prefix}:streams:{subject}          sorted set of open-stream leases, score = lease expiry (unix s)
{prefix}:used:{day}:{subject}       audio seconds used that UTC day (float), expires after 2 days
{prefix}:meter:{day}                hash ``subject\\x1fanchor`` -> seconds, expires after the kept days
==================================  ============================================================

A stream lease expires by itself (``STREAM_LEASE_S``) so a replica that dies without closing its
streams does not hold the subject's slots forever. When Redis cannot be reached the runtime stays up:
the failure is logged once, ``senseops_quota_backend_up`` drops to 0 and every error is counted; the
configured policy decides — ``open`` admits and does not meter, ``closed`` refuses with
:class:`~senseops_runtime.quotas.QuotaUnavailable`. After a failure Redis is not asked again for
``RETRY_AFTER_S``, so an outage never stalls the event loop on connect timeouts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import redis
from prometheus_client import Counter, Gauge

from senseops_runtime.quotas import (
    METERING_DAYS_KEPT,
    Admitted,
    QuotaPolicy,
    QuotaRefusal,
    QuotaUnavailable,
    admit_stream,
)

log = logging.getLogger(__name__)

FailurePolicy = Literal["open", "closed"]
STREAM_LEASE_S = 6 * 3600  # longer than any stream; a dead replica's slots free themselves after this
RETRY_AFTER_S = 5.0
SOCKET_TIMEOUT_S = 0.25
_SEP = "\x1f"

QUOTA_BACKEND_UP = Gauge("senseops_quota_backend_up", "1 while the shared quota backend answers, 0 when it does not")
QUOTA_BACKEND_ERRORS = Counter(
    "senseops_quota_backend_errors_total", "Quota decisions taken without the shared backend", ["policy"]
)

# KEYS[1] streams zset; ARGV: now, lease expiry, lease id, max streams, lease seconds.
# Returns the open count before, or -1 when full.
_OPEN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return open
"""
# KEYS[1] used, KEYS[2] meter hash; ARGV: seconds, budget, field, used ttl, meter ttl. 1 charged, 0 refused.
_CHARGE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBYFLOAT', KEYS[2], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""
# Same keys; ARGV: seconds, field. Never below zero.
_REFUND = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = used - tonumber(ARGV[1])
if left < 0 then left = 0 end
redis.call('SET', KEYS[1], tostring(left), 'KEEPTTL')
local metered = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') - tonumber(ARGV[1])
if metered > 1e-9 then redis.call('HSET', KEYS[2], ARGV[2], tostring(metered))
else redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
"""


class RedisQuotaLedger:
    """:class:`~senseops_runtime.quotas.QuotaBackend` on Redis; see the module docstring."""

    def __init__(
        self,
        policy: QuotaPolicy,
        url: str,
        failure_policy: FailurePolicy = "open",
        prefix: str = "senseops:quota",
        clock: Any = time.time,
    ) -> None:
        if failure_policy not in ("open", "closed"):
            raise ValueError(f"quota failure policy {failure_policy!r} must be 'open' or 'closed'")
        self.policy = policy
        self.failure_policy: FailurePolicy = failure_policy
        self.prefix = prefix
        self.clock = clock
        self.client = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S, decode_responses=True
        )
        self._open = self.client.register_script(_OPEN)
        self._charge = self.client.register_script(_CHARGE)
        self._refund = self.client.register_script(_REFUND)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down = False
        QUOTA_BACKEND_UP.set(1)

    # ---- availability
    def _call(self, what: str, fn: Any) -> tuple[bool, Any]:
        """(True, result) from Redis, or (False, None) when it is unreachable (policy applies)."""
        now = time.monotonic()
        with self._lock:
            skipping = now < self._down_until
        if not skipping:
            try:
                result = fn()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._mark_down(what, exc)
            else:
                self._mark_up()
                return True, result
        QUOTA_BACKEND_ERRORS.labels(self.failure_policy).inc()
        if self.failure_policy == "closed":
            raise QuotaUnavailable("quota service unavailable; try again in a few seconds")
        return False, None

    def _mark_down(self, what: str, exc: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + RETRY_AFTER_S
            first = not self._down
            self._down = True
        QUOTA_BACKEND_UP.set(0)
        if first:
            log.error(
                "quota backend unreachable during %s (%s): failing %s — %s until it answers again",
                what, exc, self.failure_policy,
                "streams and uploads are admitted unmetered" if self.failure_policy == "open" else "refusing",
            )

    def _mark_up(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        QUOTA_BACKEND_UP.set(1)
        if was_down:
            log.warning("quota backend reachable again; quotas are enforced across replicas")

    # ---- keys
    def _streams(self, subject: str) -> str:
        return f"{self.prefix}:streams:{subject}"

    def _used(self, subject: str, day: str) -> str:
        return f"{self.prefix}:used:{day}:{subject}"

    def _meter(self, day: str) -> str:
        return f"{self.prefix}:meter:{day}"

    # ---- QuotaBackend
    def open_stream(self, subject: str, day: str) -> Admitted | QuotaRefusal:
        """Take a stream slot (a lease) if the subject has one free and budget left today."""
        lease = uuid.uuid4().hex
        now = self.clock()

        def run() -> tuple[int, float]:
            args = [now, now + STREAM_LEASE_S, lease, self.policy.max_streams_per_subject, STREAM_LEASE_S]
            opened = int(self._open(keys=[self._streams(subject)], args=args))
            used = float(self.client.get(self._used(subject, day)) or 0.0)
            return opened, used

        ok, result = self._call("open_stream", run)
        if not ok:
            return Admitted(remaining_s=self.policy.audio_seconds_per_day)
        opened, used = result
        verdict = admit_stream(self.policy, 0 if opened >= 0 else self.policy.max_streams_per_subject, used)
        if isinstance(verdict, QuotaRefusal):
            if opened >= 0:
                self._call("close_stream", lambda: self.client.zrem(self._streams(subject), lease))
            return verdict
        return Admitted(remaining_s=verdict.remaining_s, lease=lease)

    def close_stream(self, subject: str, lease: str = "") -> None:
        """Give the lease back (an unknown or empty lease is a no-op)."""
        if not lease:
            return
        with contextlib.suppress(QuotaUnavailable):  # the lease expires by itself
            self._call("close_stream", lambda: self.client.zrem(self._streams(subject), lease))

    def charge(self, subject: str, anchor_id: str, seconds: float, day: str) -> bool:
        """Atomically meter ``seconds`` if they fit into today's budget."""
        keys = [self._used(subject, day), self._meter(day)]
        field = f"{subject}{_SEP}{anchor_id}"
        meter_ttl = (METERING_DAYS_KEPT + 1) * 86_400
        args: list[str | float] = [seconds, self.policy.audio_seconds_per_day, field, 2 * 86_400, meter_ttl]
        ok, result = self._call("charge", lambda: self._charge(keys=keys, args=args))
        return True if not ok else bool(int(result))

    def refund(self, subject: str, anchor_id: str, seconds: float, day: str) -> None:
        """Give back audio that was not transcribed."""
        keys = [self._used(subject, day), self._meter(day)]
        self._call("refund", lambda: self._refund(keys=keys, args=[seconds, f"{subject}{_SEP}{anchor_id}"]))

    def has_budget(self, subject: str, day: str) -> bool:
        """Is any audio left today?"""
        ok, used = self._call("has_budget", lambda: float(self.client.get(self._used(subject, day)) or 0.0))
        return True if not ok else bool(used < self.policy.audio_seconds_per_day)

    def metering(self) -> list[dict[str, object]]:
        """Today's and the kept earlier days' metering, across every replica."""
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        days = [(today - timedelta(days=n)).isoformat() for n in range(METERING_DAYS_KEPT, -1, -1)]
        ok, tables = self._call("metering", lambda: [self.client.hgetall(self._meter(d)) for d in days])
        if not ok:
            return []
        rows: list[dict[str, object]] = []
        for day, table in zip(days, tables, strict=True):
            for name, seconds in sorted(table.items()):
                subject, _, anchor = name.partition(_SEP)
                rows.append(
                    {"day": day, "subject": subject, "anchor_id": anchor, "audio_seconds": round(float(seconds), 3)}
                )
        return rows
