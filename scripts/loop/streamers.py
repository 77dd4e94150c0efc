"""Simulated streamers: espeak-ng speech of their scripts, streamed at real time through the gateway with
the project's client (``senseops_runtime.client.stream_pcm_resilient``), each with its own consented token.

Each streamer speaks its script in sessions of a few lines (a new WebSocket each time, as an app that
reconnects between songs would), so during a rollout the sessions land on stable and candidate pods in
the gateway's proportions. Like the app, a streamer whose replica drains (close 1012 when a pod goes away:
scale-in, an aborted candidate) reconnects through the gateway and resumes the stream where its finals
stopped; that is counted as a reconnect, not an error. An error is a session that ended without its normal
close (the client gave up). Per streamer it keeps partials, finals with their latency, reconnects, the
errors, and the labels its script gives to the segments the runtime recorded (see :mod:`scripts.loop.domain`).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scripts.loop.domain import GAP_S, LEAD_IN_S, ScriptLine, Streamer, align, layout
from senseops_common.speech import ENGLISH, MANDARIN, SAMPLE_RATE, synthesize, to_pcm16
from senseops_runtime.auth import AuthConfig, issue_token
from senseops_runtime.client import pcm_frames, stream_pcm_resilient

LINES_PER_SESSION = 4
FRAME_MS = 100
TOKEN_TTL_S = 4 * 3600


@dataclass(frozen=True)
class Session:
    """One session's audio and where each script line is in it."""

    pcm: bytes
    script: tuple[ScriptLine, ...]


def build_sessions(streamer: Streamer, lines_per_session: int = LINES_PER_SESSION) -> list[Session]:
    """Speak the streamer's lines (espeak-ng) and cut them into sessions with silences between lines."""
    voice = MANDARIN if streamer.lang == "zh" else ENGLISH
    sessions = []
    for first in range(0, len(streamer.lines), lines_per_session):
        texts = streamer.lines[first:first + lines_per_session]
        clips = [synthesize(text, voice, speed_wpm=streamer.speed_wpm) for text in texts]
        script = layout([round(len(c) * 1000 / SAMPLE_RATE) for c in clips], texts)
        gap = np.zeros(round(GAP_S * SAMPLE_RATE), np.float32)
        parts = [np.zeros(round(LEAD_IN_S * SAMPLE_RATE), np.float32)]
        for clip in clips:
            parts += [clip, gap]
        sessions.append(Session(to_pcm16(np.concatenate(parts)), tuple(script)))
    return sessions


@dataclass
class StreamerReport:
    """What one streamer saw."""

    anchor_id: str
    sessions: int = 0
    partials: int = 0
    finals: int = 0
    final_latencies_s: list[float] = field(default_factory=list)  # audio end of the segment → final received
    reconnects: int = 0  # connections re-established after a retryable close (a draining pod's 1012, a reset)
    errors: list[str] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)  # time.monotonic() of each error
    labels: dict[str, str] = field(default_factory=dict)  # segment_id → the script line it lines up with
    texts: list[tuple[str, str]] = field(default_factory=list)  # (script line, live final) for aligned segments


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q * 100) - 1))])


def format_reports(reports: Sequence[StreamerReport]) -> str:
    """One row per streamer: sessions, partials, finals, labelled segments, latency p50/p95, reconnects, errors."""
    rows = [f"{'streamer':<12} {'sessions':>8} {'partials':>8} {'finals':>6} {'labelled':>8} "
            f"{'p50 final':>9} {'p95 final':>9} {'reconnects':>10} {'errors':>6}"]
    for r in reports:
        p50, p95 = percentile(r.final_latencies_s, 0.5), percentile(r.final_latencies_s, 0.95)
        rows.append(f"{r.anchor_id:<12} {r.sessions:>8} {r.partials:>8} {r.finals:>6} {len(r.labels):>8} "
                    f"{'—' if p50 is None else f'{p50:.2f} s':>9} {'—' if p95 is None else f'{p95:.2f} s':>9} "
                    f"{r.reconnects:>10} {len(r.errors):>6}")
    return "\n".join(rows)


def consented_token(secret: str, streamer: Streamer, now: float) -> str:
    """The streamer's token: its own anchor id, consent to recording (what ``senseops token --consent`` signs)."""
    return issue_token(AuthConfig(hs256_secret=secret), secret, f"user-{streamer.anchor_id}", streamer.anchor_id,
                       ["stream", "transcribe"], True, now, TOKEN_TTL_S)


async def stream_session(url: str, token: str, streamer: Streamer, session: Session, report: StreamerReport) -> None:
    """Stream one session at real time, reconnecting and resuming after a retryable close (a draining pod);
    add what came back to ``report``."""
    report.sessions += 1
    started = time.monotonic()  # the client paces frame i to leave i frames after this
    try:
        outcome = await stream_pcm_resilient(url, pcm_frames(session.pcm, FRAME_MS), token=token,
                                             options={"language": streamer.lang, "itn": False}, realtime=True)
    except Exception as exc:  # not a close the client handles (those end in the outcome): a bug to see
        report.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        report.error_times.append(time.monotonic())
        return
    report.partials += len(outcome.partials)
    report.finals += len(outcome.finals)
    report.reconnects += outcome.reconnects
    if outcome.close_code != 1000:  # the client gave up: the stream's remaining audio was not transcribed
        report.errors.append(f"closed {outcome.close_code} after {outcome.reconnects} reconnects: "
                             f"{outcome.close_reason}"[:200])
        report.error_times.append(time.monotonic())
    for received, message in outcome.finals:
        report.final_latencies_s.append(received - (started + int(message["end_ms"]) / 1000))
        line = align(session.script, (int(message["start_ms"]), int(message["end_ms"])))
        if line is not None:
            report.labels[str(message["segment_id"])] = line.text
            report.texts.append((line.text, str(message["final"])))


@dataclass
class StreamerTeam:
    """Several streamers streaming concurrently in a background thread until stopped (or their rounds end)."""

    url: str
    secret: str
    team: Sequence[Streamer]
    rounds: int | None = 1  # None: keep streaming until stop()
    reports: dict[str, StreamerReport] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.sessions = {s.anchor_id: build_sessions(s) for s in self.team}
        self.reports = {s.anchor_id: StreamerReport(s.anchor_id) for s in self.team}

    async def _one(self, streamer: Streamer) -> None:
        token = consented_token(self.secret, streamer, time.time())
        done = 0
        while not self._stop.is_set() and (self.rounds is None or done < self.rounds):
            for session in self.sessions[streamer.anchor_id]:
                if self._stop.is_set():
                    return
                await stream_session(self.url, token, streamer, session, self.reports[streamer.anchor_id])
            done += 1

    async def _all(self) -> None:
        await asyncio.gather(*(self._one(s) for s in self.team))

    def start(self) -> StreamerTeam:
        """Start streaming in a thread; returns at once."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._all()), name="streamers", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the rounds to finish; True when they did."""
        assert self._thread is not None
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stop(self, timeout_s: float = 120) -> None:
        """Finish the sessions in flight (no stream is cut), then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def labels(self) -> dict[str, str]:
        """segment_id → script line, over all streamers."""
        return {k: v for r in self.reports.values() for k, v in r.labels.items()}
