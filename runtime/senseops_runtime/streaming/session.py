"""One WebSocket stream: read frames, score VAD, cut segments, ask the scheduler for partials and finals.

The decisions (frame checks, throttling, segmentation, partial timing) live in pure modules; this class
only moves data between the socket, the VAD thread and the scheduler. Finals are sent in segment order;
a partial that arrives after its segment closed is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import soundfile as sf
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from senseops_runtime import limits
from senseops_runtime.audio_input import pcm16_to_float
from senseops_runtime.auth import Principal
from senseops_runtime.drain import DRAIN_CLOSE_REASON, StreamDrainStep, stream_drain_step
from senseops_runtime.engine.base import Transcript
from senseops_runtime.quotas import QuotaUnavailable
from senseops_runtime.recording import SegmentResult, SessionRecording
from senseops_runtime.scheduler import Overloaded, Priority
from senseops_runtime.services import Services
from senseops_runtime.streaming.buffer import StreamAudio
from senseops_runtime.streaming.decisions import (
    Accept,
    CloseVerdict,
    Delay,
    StreamOptions,
    check_audio_frame,
    is_eof_message,
    partial_due,
    partial_window,
    throttle,
)
from senseops_runtime.streaming.identity import SegmentSpan, is_replay, new_stream_id, recorded_spans, segment_id
from senseops_runtime.streaming.segmenter import (
    SegmentClosed,
    SegmentDropped,
    Segmenter,
    SegmenterConfig,
    SegmentEvent,
    SegmentOpened,
)

log = logging.getLogger(__name__)

# VAD scoring is cheap but not free; it gets its own thread so the event loop only moves bytes.
_VAD_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")


class StreamClosed(Exception):
    """Raised inside the session to end it with a close code and reason."""

    def __init__(self, verdict: CloseVerdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


@dataclass
class _OpenSegment:
    number: int
    start: int
    confirmed_sent_partial_at: int = 0  # absolute sample index of the last partial request
    partial_in_flight: bool = False
    partial_audio_at: float = 0.0  # monotonic arrival time of the newest sample in the partial being decoded


def wav_bytes(clip: np.ndarray) -> bytes:
    """16 kHz mono float32 -> a 16-bit PCM WAV file in memory."""
    buffer = io.BytesIO()
    pcm = (np.clip(clip, -1, 1) * 32767).astype(np.int16)
    sf.write(buffer, pcm, limits.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def day_of(now: float) -> str:
    """UTC day key for daily budgets."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


class StreamSession:
    """Runs one stream from the first audio frame to the close."""

    def __init__(self, ws: WebSocket, services: Services, principal: Principal, options: StreamOptions) -> None:
        assert services.scheduler is not None and services.vad is not None and services.engine is not None
        self.ws = ws
        self.services = services
        self.scheduler = services.scheduler
        self.engine = services.engine
        self.principal = principal
        self.options = options
        settings = services.settings
        self.segmenter = Segmenter(
            SegmenterConfig(
                min_silence_samples=settings.vad_min_silence_ms * 16,
                max_segment_samples=int(settings.max_segment_s * limits.SAMPLE_RATE),
            )
        )
        self.vad = services.vad.stream()
        self.audio = StreamAudio()
        self.vad_pos = 0  # absolute index of the next sample to score
        self.open: _OpenSegment | None = None
        self.segments_started = 0
        self.started_at = time.time()
        # Identity: a resumed stream keeps its id and timeline; a new one is named now. The writer id
        # keeps this connection's JSONL parts apart from every other connection's.
        started = datetime.fromtimestamp(self.started_at, UTC)
        self.stream = options.resume or new_stream_id(started, uuid.uuid4().hex[:12])
        self.ts = self.stream.ts
        self.writer_id = uuid.uuid4().hex[:8]
        self.offset_samples = options.start_offset_ms * limits.SAMPLE_RATE // 1000
        self.recorded: list[SegmentSpan] = []  # spans of this stream already recorded (replays are skipped)
        self.first_audio_at: float | None = None
        self.last_audio_at = 0.0  # monotonic arrival time of the newest audio frame
        self.send_lock = asyncio.Lock()
        self.finals: asyncio.Queue[tuple[SegmentClosed, int, np.ndarray, asyncio.Future[Transcript], float] | None] = (
            asyncio.Queue()
        )
        self.final_sender: asyncio.Task[None] | None = None
        self.partial_tasks: set[asyncio.Task[None]] = set()
        self.interval_samples = int(settings.partial_interval_s * limits.SAMPLE_RATE)
        self.window_samples = int(settings.partial_window_s * limits.SAMPLE_RATE)
        self.pushback: list[Message] = []  # a first audio frame read by the router while looking for options
        self.pending_receive: asyncio.Future[Message] | None = None  # a read that outlived a wake-up by the drain
        self.recording: SessionRecording | None = None
        self.record = settings.recording_enabled and principal.consent and services.recorder is not None

    # ---- sending
    async def send_json(self, message: dict[str, object]) -> None:
        """Send one message unless the client has gone."""
        async with self.send_lock:
            if (
                self.ws.application_state != WebSocketState.CONNECTED
                or self.ws.client_state != WebSocketState.CONNECTED
            ):
                return
            # The client may have left meanwhile; finals are still recorded.
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.ws.send_json(message)

    # ---- main loop
    async def run(self) -> CloseVerdict:
        """Process frames until eof, client close or an error; returns how to close."""
        if self.options.resume is not None and self.record:
            recorder = self.services.recorder
            assert recorder is not None
            ids = await asyncio.to_thread(recorder.recorded_segment_ids, self.principal.anchor_id, self.ts)
            self.recorded = recorded_spans(self.stream, ids)
        # The client keeps this to resume the stream after a reconnect (see streaming.identity).
        await self.send_json(
            {
                "stream_id": str(self.stream),
                "resumed": self.options.resume is not None,
                "start_offset_ms": self.options.start_offset_ms,
            }
        )
        self.final_sender = asyncio.create_task(self._send_finals())
        try:
            verdict = await self._receive_loop()
        except StreamClosed as closed:
            verdict = closed.verdict
        if self.pending_receive is not None:
            self.pending_receive.cancel()
        finishing = (limits.CLOSE_NORMAL, limits.CLOSE_POLICY, limits.CLOSE_SERVICE_RESTART, 0)
        if verdict.code in finishing:
            # eof, client close, quota or drain: the audio received so far still gets its final.
            try:
                self._handle_events(self.segmenter.finish(self.audio.total))
            except StreamClosed as closed:
                verdict = closed.verdict
        await self.finals.put(None)
        try:
            await self.final_sender
        except StreamClosed as closed:
            verdict = closed.verdict
        for task in self.partial_tasks:
            task.cancel()
        if self.recording is not None:
            await asyncio.to_thread(self.recording.close)
        return verdict

    async def _receive_loop(self) -> CloseVerdict:
        drain = self.services.drain
        watch = drain.watch()
        try:
            return await self._read_frames(watch)
        finally:
            watch.cancel()

    async def _read_frames(self, drain_watch: asyncio.Future[None]) -> CloseVerdict:
        settings = self.services.settings
        drain = self.services.drain
        last_message_at = time.monotonic()
        while True:
            if self.final_sender is not None and self.final_sender.done():
                self.final_sender.result()  # re-raises the sender's StreamClosed (e.g. a failed decode)
            now = time.monotonic()
            waited = drain.waited(now)
            grace = settings.drain_segment_grace_s
            step = stream_drain_step(drain.draining, self.open is not None, waited, grace)
            if step is StreamDrainStep.CLOSE:
                # run() finalises a segment still open (grace over), sends the finals, then closes with 1012.
                return CloseVerdict(limits.CLOSE_SERVICE_RESTART, DRAIN_CLOSE_REASON)
            if self.pushback:
                message = self.pushback.pop()
            else:
                idle_s = settings.ws_idle_timeout_s
                timeout = last_message_at + idle_s - now
                if step is StreamDrainStep.FINISH_UTTERANCE:
                    timeout = min(timeout, grace - waited)  # wake up when the grace runs out
                received = await self._next_message(drain_watch, max(0.0, timeout))
                if received is None:  # woken by the drain, the end of its grace, or the idle timeout
                    if time.monotonic() - last_message_at >= idle_s:
                        # Finals of audio already received are still sent (run() finishes the segmenter).
                        return CloseVerdict(
                            limits.CLOSE_POLICY,
                            f"idle: no data for {idle_s:g} s; send audio or empty keep-alive frames",
                        )
                    continue
                message = received
                last_message_at = time.monotonic()
            if message["type"] == "websocket.disconnect":
                return CloseVerdict(0, "client closed")
            if message.get("text") is not None:
                if is_eof_message(message["text"]):
                    return CloseVerdict(limits.CLOSE_NORMAL, "end of stream")
                return CloseVerdict(
                    limits.CLOSE_UNSUPPORTED_DATA,
                    'text frame where audio was expected; only {"eof": true} is accepted',
                )
            data = message.get("bytes") or b""
            if (bad := check_audio_frame(len(data), self.services.settings.max_frame_bytes)) is not None:
                return bad
            if data:
                await self._on_audio(data)

    async def _next_message(self, drain_watch: asyncio.Future[None], timeout: float) -> Message | None:
        """The next client message, or None when the drain begins or ``timeout`` passes first. A read cut
        short this way is kept for the next call, so no frame is lost."""
        if self.pending_receive is None:
            self.pending_receive = asyncio.ensure_future(self.ws.receive())
        waiters: set[asyncio.Future[Any]] = {self.pending_receive}
        if not drain_watch.done():
            waiters.add(drain_watch)
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self.pending_receive not in done:
            return None
        receive, self.pending_receive = self.pending_receive, None
        return receive.result()

    async def _on_audio(self, data: bytes) -> None:
        now = time.monotonic()
        if self.first_audio_at is None:
            self.first_audio_at = now
        settings = self.services.settings
        n = len(data) // limits.BYTES_PER_SAMPLE
        verdict = throttle(
            (self.audio.total + n) / limits.SAMPLE_RATE,
            now - self.first_audio_at,
            settings.realtime_burst_s,
            settings.realtime_close_ahead_s,
        )
        if isinstance(verdict, CloseVerdict):
            raise StreamClosed(verdict)
        if isinstance(verdict, Delay):
            await asyncio.sleep(verdict.seconds)
        assert isinstance(verdict, (Accept, Delay))
        seconds = n / limits.SAMPLE_RATE
        try:
            charged = self.services.ledger.charge(
                self.principal.subject, self.principal.anchor_id, seconds, day_of(time.time())
            )
        except QuotaUnavailable as exc:
            raise StreamClosed(CloseVerdict(limits.CLOSE_TRY_AGAIN_LATER, str(exc))) from exc
        if not charged:
            raise StreamClosed(
                CloseVerdict(limits.CLOSE_POLICY, "daily audio budget used up; try again tomorrow (UTC)")
            )
        metrics = self.services.metrics
        metrics.audio_seconds.labels(*metrics.model_labels, "stream").inc(seconds)
        self.audio.append(pcm16_to_float(data))
        self.last_audio_at = time.monotonic()
        # Score every whole 512-sample chunk not yet scored, off the event loop.
        step = limits.VAD_CHUNK_SAMPLES
        count = (self.audio.total - self.vad_pos) // step
        if count == 0:
            return
        chunk = self.audio.slice(self.vad_pos, self.vad_pos + count * step)
        probabilities = await asyncio.get_running_loop().run_in_executor(_VAD_EXECUTOR, self.vad.score_many, chunk)
        self.vad_pos += count * step
        for probability in probabilities:
            self._handle_events(self.segmenter.feed(probability))
        self._maybe_request_partial()
        if self.open is None:
            # Keep only the pre-roll a future segment may reach back into.
            self.audio.trim(self.vad_pos - self.segmenter.config.pad_samples - step)

    # ---- segments
    def _handle_events(self, events: list[SegmentEvent]) -> None:
        for event in events:
            if isinstance(event, SegmentOpened):
                self.segments_started += 1
                self.open = _OpenSegment(self.segments_started, event.start, confirmed_sent_partial_at=event.start)
            elif isinstance(event, SegmentDropped):
                self.open = None
            elif isinstance(event, SegmentClosed):
                number = self.open.number if self.open else self.segments_started
                self.open = None
                clip = self.audio.slice(event.start, event.end)
                try:
                    future = self.scheduler.submit(clip, self.options.decode, Priority.FINAL)
                except Overloaded as exc:
                    # The segment's audio will not be transcribed: it is not charged to the budget.
                    self.services.ledger.refund(
                        self.principal.subject, self.principal.anchor_id, len(clip) / limits.SAMPLE_RATE,
                        day_of(time.time()),
                    )
                    raise StreamClosed(CloseVerdict(limits.CLOSE_TRY_AGAIN_LATER, f"server overloaded: {exc}")) from exc
                self.finals.put_nowait((event, number, clip, future, time.monotonic()))

    def _maybe_request_partial(self) -> None:
        seg = self.open
        if seg is None:
            return
        if not partial_due(
            segment_open=True,
            segment_confirmed=self.segmenter.confirmed,
            partial_in_flight=seg.partial_in_flight,
            samples_since_last_partial=self.vad_pos - seg.confirmed_sent_partial_at,
            interval_samples=self.interval_samples,
        ):
            return
        # The clip is cut when the decode worker picks the job (newest audio then), not now: a partial
        # that waited behind other sessions' work is not stale when it runs.
        try:
            future = self.scheduler.submit_latest(lambda: self._partial_clip(seg), self.options.decode)
        except Overloaded:
            return  # partials are best effort; the final is what must not be lost
        seg.partial_in_flight = True
        seg.confirmed_sent_partial_at = self.vad_pos
        task = asyncio.create_task(self._send_partial(seg, future))
        self.partial_tasks.add(task)
        task.add_done_callback(self.partial_tasks.discard)

    def _partial_clip(self, seg: _OpenSegment) -> np.ndarray | None:
        """The open segment's tail as it is now (None once the segment closed: its final supersedes it)."""
        if self.open is not seg:
            return None
        end = self.audio.total
        lo, hi = partial_window(end - seg.start, self.window_samples)
        seg.confirmed_sent_partial_at = max(seg.confirmed_sent_partial_at, self.vad_pos)
        seg.partial_audio_at = self.last_audio_at
        return self.audio.slice(seg.start + lo, seg.start + hi)

    async def _send_partial(self, seg: _OpenSegment, future: asyncio.Future[Transcript]) -> None:
        try:
            transcript = await future
        except Exception:  # a failed partial is not fatal; the final decode will report a real failure
            log.exception("partial decode failed")
            return
        finally:
            seg.partial_in_flight = False
        if self.open is not seg or not transcript.text:
            return  # the segment closed meanwhile: its final supersedes this partial
        await self.send_json({"partial": transcript.text})
        # Latency as a listener sees it: the newest audio in this partial arrived -> the partial was sent.
        metrics = self.services.metrics
        metrics.partial_latency.labels(*metrics.model_labels).observe(time.monotonic() - seg.partial_audio_at)

    async def _send_finals(self) -> None:
        per_ms = limits.SAMPLE_RATE // 1000
        while (item := await self.finals.get()) is not None:
            event, _number, clip, future, closed_at = item
            try:
                transcript = await future
            except Exception as exc:
                log.exception("final decode failed")
                raise StreamClosed(CloseVerdict(limits.CLOSE_INTERNAL, "model failed to decode a segment")) from exc
            span = SegmentSpan(self.offset_samples + event.start, self.offset_samples + event.end)
            message: dict[str, object] = {
                "final": transcript.text,
                "segment_id": segment_id(self.stream, span),
                "start_ms": span.start // per_ms,
                "end_ms": span.end // per_ms,
                "lang": transcript.lang,
                "emotion": transcript.emotion,
                "event": transcript.event,
                "confidence": round(transcript.confidence, 4),
            }
            await self.send_json(message)
            metrics = self.services.metrics
            metrics.final_latency.labels(*metrics.model_labels).observe(time.monotonic() - closed_at)
            if self.record:
                await self._record(clip, message, span)

    async def _record(self, clip: np.ndarray, message: dict[str, object], span: SegmentSpan) -> None:
        if is_replay(span, self.recorded):
            # Replayed after a reconnect and recorded by the earlier connection: sent again, not stored twice.
            self.services.metrics.recordings.labels("replay_skipped").inc()
            return
        if self.recording is None:
            recorder = self.services.recorder
            assert recorder is not None
            self.recording = recorder.open_session(
                self.principal.anchor_id, self.ts, self.writer_id, self.engine.name, self.engine.version
            )
        recording = self.recording
        result = SegmentResult(
            segment_id=str(message["segment_id"]),
            start_ms=int(message["start_ms"]),  # type: ignore[call-overload]
            end_ms=int(message["end_ms"]),  # type: ignore[call-overload]
            text=str(message["final"]),
            lang=str(message["lang"]),
            emotion=str(message["emotion"]),
            event=str(message["event"]),
            confidence=float(message["confidence"]),  # type: ignore[arg-type]
        )
        try:
            await asyncio.to_thread(lambda: recording.record(result, wav_bytes(clip)))
            self.recorded.append(span)
            self.services.metrics.recordings.labels("spooled").inc()
        except Exception:
            # The spool is local disk; failing means it is full or gone. The transcript was already sent,
            # so the loss is counted and logged loudly rather than ending the stream.
            log.exception("recording segment %s failed", result.segment_id)
            self.services.metrics.recordings.labels("failed").inc()
