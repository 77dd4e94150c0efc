"""Graceful drain on SIGTERM: stop taking work, finish what is open, flush recordings, then exit 0.

The order, all of it bounded by ``SENSEOPS_DRAIN_TIMEOUT_S`` (keep it below the pod's
``terminationGracePeriodSeconds``; the manifests give 20 s of drain inside a 45 s grace):

1. ``/readyz`` answers 503 ``draining`` at once, so the EndpointSlice and the proxy stop sending new work.
2. New work that still arrives (endpoint changes take a moment to reach every proxy) gets a defined answer a
   client retries elsewhere: **HTTP 503 with ``Retry-After``** (``/healthz``, ``/readyz``, ``/api/health`` and
   ``/metrics`` keep answering), and a **new WebSocket stream is accepted and closed with 1012** ("service
   restart") and a reason.
3. In-flight HTTP requests finish. Each open stream keeps reading audio while it is inside an utterance, until
   VAD closes the segment or ``SENSEOPS_DRAIN_SEGMENT_GRACE_S`` passes (then the segment is cut where the
   audio ends); its finals are sent; then the stream is closed with **1012** and a reason. The clients
   reconnect through the load balancer, resume the stream (``resume`` = ``stream_id``, ``start_offset_ms``)
   and replay the audio no final has acknowledged.
4. Recordings still in the spool are uploaded; what does not make it in time stays on disk for the next start.

Why 1012 for both and not 1013 ("try again later"): 1013 says "overloaded", and clients back off from it;
1012 says this server is going away, reconnect now — the load balancer picks another replica.

This module holds the state and the pure decisions; ``app.drain_services`` runs the drain and ``__main__``
starts it on SIGTERM.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from enum import Enum

from senseops_runtime import limits

# Probes and scrapes keep working while draining: the kubelet must see "not ready" (not a refused
# connection), and Prometheus should see the last numbers of the pod.
SERVED_WHILE_DRAINING = frozenset({"/healthz", "/readyz", "/api/health", "/metrics"})

DRAIN_CLOSE_REASON = "server draining (shutting down); reconnect to continue on another replica"
REFUSED_STREAM_REASON = "server draining (shutting down); reconnect, another replica will take the stream"
REFUSED_HTTP_MESSAGE = "server draining (shutting down); retry the request, another replica will answer"


class StreamDrainStep(Enum):
    """What an open stream does on its next look at the drain."""

    CARRY_ON = "carry_on"  # not draining
    FINISH_UTTERANCE = "finish_utterance"  # draining, inside an utterance, grace left: keep reading audio
    CLOSE = "close"  # finalise what is open, send the finals, close with 1012


def stream_drain_step(draining: bool, segment_open: bool, waited_s: float, grace_s: float) -> StreamDrainStep:
    """A stream's move during a drain: an utterance in progress may finish (VAD cut) for ``grace_s``.

    Closing between utterances means no sentence is split across two replicas; the grace bounds how long a
    speaker who never pauses can hold the drain up.
    """
    if not draining:
        return StreamDrainStep.CARRY_ON
    if segment_open and waited_s < grace_s:
        return StreamDrainStep.FINISH_UTTERANCE
    return StreamDrainStep.CLOSE


def refuses_http(path: str, draining: bool) -> bool:
    """Is a new HTTP request for ``path`` answered 503 + Retry-After instead of being served?"""
    return draining and path not in SERVED_WHILE_DRAINING


def drain_settled(open_streams: int, in_flight_http: int) -> bool:
    """Nothing left that a client is waiting on (spool uploads come after)."""
    return open_streams == 0 and in_flight_http == 0


def check_drain_settings(drain_timeout_s: float, segment_grace_s: float) -> None:
    """Refuse settings with which a drain cannot finish its streams in time (a clear start-up error)."""
    if not (math.isfinite(drain_timeout_s) and drain_timeout_s > 0):
        raise ValueError(f"SENSEOPS_DRAIN_TIMEOUT_S={drain_timeout_s} must be a positive number of seconds")
    if not (math.isfinite(segment_grace_s) and 0 <= segment_grace_s < drain_timeout_s):
        raise ValueError(
            f"SENSEOPS_DRAIN_SEGMENT_GRACE_S={segment_grace_s} must be at least 0 and below "
            f"SENSEOPS_DRAIN_TIMEOUT_S={drain_timeout_s}: streams need time to send their finals after it"
        )


@dataclass
class DrainState:
    """Whether the process drains, since when, and what is still open (one per app, on the event loop)."""

    draining: bool = False
    started_at: float | None = None  # time.monotonic() of the SIGTERM
    open_streams: int = 0
    in_flight_http: int = 0
    retry_after_s: int = limits.DRAIN_RETRY_AFTER_S
    # Futures of the streams waiting for a drain, each on its own loop (an app may meet several loops in tests).
    _watchers: set[asyncio.Future[None]] = field(default_factory=set)

    def begin(self, now: float) -> bool:
        """Start draining and wake every watcher; False when a drain was already under way. Call on the loop."""
        if self.draining:
            return False
        self.draining, self.started_at = True, now
        for watcher in self._watchers:
            if not watcher.done():
                watcher.get_loop().call_soon_threadsafe(_resolve, watcher)
        self._watchers.clear()
        return True

    def watch(self) -> asyncio.Future[None]:
        """A future (on the running loop) done when the drain begins; already done while draining."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.draining:
            future.set_result(None)
        else:
            self._watchers.add(future)
            future.add_done_callback(self._watchers.discard)
        return future

    def waited(self, now: float) -> float:
        """Seconds since the drain began (0 when not draining)."""
        return 0.0 if self.started_at is None else max(0.0, now - self.started_at)

    @property
    def settled(self) -> bool:
        return drain_settled(self.open_streams, self.in_flight_http)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
