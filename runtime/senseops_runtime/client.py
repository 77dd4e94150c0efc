"""Python streaming client and CLI for ``WS /ws/stream``.

    python -m senseops_runtime.client --url ws://127.0.0.1:8000/ws/stream --token $TOKEN speech.wav
    arecord -f S16_LE -r 16000 -c 1 -t raw | python -m senseops_runtime.client --token $TOKEN -

Audio is sent in frames of ``--frame-ms`` at real time (``--fast`` sends as fast as the server allows;
it throttles clients ahead of real time). Partials are printed as they arrive, finals as
``[start_ms-end_ms] text`` lines. Exit status: 0 on a normal close, 2 when the server closed with an
error code (printed with its reason).

:func:`stream_pcm_resilient` (the CLI's default) survives a server going away: when the connection drops or
the server closes with a retryable code (1012 when a replica drains for shutdown, 1013 overloaded, 1011,
1006), it reconnects, resumes the stream (``resume`` = the ``stream_id`` of the first connection,
``start_offset_ms``) and replays the audio no final has acknowledged yet — the same protocol as the
TypeScript client in ``runtime/clients/ts``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

SAMPLE_RATE = 16_000
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000
# Closes worth a reconnect: going away, no close frame, internal error, service restart (a draining
# replica), try again later, bad gateway. Auth/quota (1008) and bad data (1003/1007) will not get better.
RETRYABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1014})


@dataclass
class StreamOutcome:
    """Everything the server said, with client-side receive times (``time.monotonic``)."""

    partials: list[tuple[float, str]] = field(default_factory=list)
    finals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    audio_sent_s: float = 0.0
    stream_id: str | None = None  # from the server's first message; send it back as ``resume`` to continue
    reconnects: int = 0  # connections re-established after a drop (stream_pcm_resilient)
    close_codes: list[int] = field(default_factory=list)  # every connection's close code, in order

    @property
    def final_text(self) -> str:
        """All finals joined (no separator for CJK-only text, a space otherwise)."""
        texts = [str(message["final"]) for _, message in self.finals if message.get("final")]
        ascii_text = all(t.isascii() for t in texts)
        return (" " if ascii_text else "").join(texts)


def pcm_frames(pcm: bytes, frame_ms: int) -> list[bytes]:
    """Split s16le PCM into frames of ``frame_ms`` (the last one may be shorter)."""
    size = frame_ms * BYTES_PER_MS
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def wav_to_pcm(path: str) -> bytes:
    """Read any libsndfile format, mix to mono, resample to 16 kHz, return s16le bytes."""
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    pcm: bytes = (np.clip(mono, -1, 1) * 32767).round().astype("<i2").tobytes()
    return pcm


async def stream_pcm(
    url: str,
    frames: Iterable[bytes] | AsyncIterator[bytes],
    token: str | None = None,
    options: dict[str, Any] | None = None,
    realtime: bool = True,
    token_in_header: bool = False,
    on_partial: Callable[[str], None] | None = None,
    on_final: Callable[[dict[str, Any]], None] | None = None,
    on_frame_sent: Callable[[int, float], None] | None = None,
    send_eof: bool = True,
) -> StreamOutcome:
    """Stream PCM frames, collect partials and finals until the server closes the socket."""
    outcome = StreamOutcome()
    headers = {}
    if token and token_in_header:
        headers["Authorization"] = f"Bearer {token}"
    elif token:
        url += ("&" if "?" in url else "?") + f"token={token}"

    async with connect(url, additional_headers=headers, max_size=2**20, proxy=None) as ws:

        async def receive() -> None:
            try:
                async for raw in ws:
                    now = time.monotonic()
                    message = json.loads(raw)
                    if "partial" in message:
                        outcome.partials.append((now, message["partial"]))
                        if on_partial:
                            on_partial(message["partial"])
                    elif "final" in message:
                        outcome.finals.append((now, message))
                        if on_final:
                            on_final(message)
                    elif "stream_id" in message:
                        outcome.stream_id = message["stream_id"]
            except ConnectionClosed:
                pass

        receiver = asyncio.create_task(receive())
        try:
            if options:
                await ws.send(json.dumps(options))
            start = time.monotonic()
            sent_ms = 0.0
            index = 0
            iterator = frames if isinstance(frames, AsyncIterator) else _aiter(frames)
            async for frame in iterator:
                if realtime:
                    # Absolute schedule: frame n leaves at start + (audio sent so far), no drift.
                    delay = start + sent_ms / 1000 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await ws.send(frame)
                sent_ms += len(frame) / BYTES_PER_MS
                if on_frame_sent:
                    on_frame_sent(index, time.monotonic())
                index += 1
            outcome.audio_sent_s = sent_ms / 1000
            if send_eof:
                await ws.send(json.dumps({"eof": True}))
        except ConnectionClosed:
            pass
        await receiver
        outcome.close_code = ws.close_code
        outcome.close_reason = ws.close_reason or ""
    return outcome


class ReplayBuffer:
    """Frames no final has acknowledged yet, on the stream's timeline (ms since the first frame); bounded."""

    def __init__(self, max_ms: float = 10_000) -> None:
        self.max_ms = max_ms
        self.frames: list[tuple[float, bytes]] = []  # (start_ms, data)
        self.next_start_ms = 0.0

    def push(self, data: bytes) -> None:
        """Add a frame at the end of the timeline; the oldest go beyond ``max_ms``."""
        self.frames.append((self.next_start_ms, data))
        self.next_start_ms += len(data) / BYTES_PER_MS
        while len(self.frames) > 1 and self.next_start_ms - self.frames[0][0] > self.max_ms:
            self.frames.pop(0)

    def acknowledge(self, end_ms: float) -> None:
        """A final covered the audio up to ``end_ms``: forget the frames that end at or before it."""
        self.frames = [(start, data) for start, data in self.frames if start + len(data) / BYTES_PER_MS > end_ms]

    def replay_start_ms(self) -> float:
        """Where a replay starts on the timeline (the end when nothing is pending)."""
        return self.frames[0][0] if self.frames else self.next_start_ms


@dataclass
class _Link:
    ws: Any = None  # the open connection frames go to; None while (re)connecting


async def stream_pcm_resilient(
    url: str,
    frames: Iterable[bytes] | AsyncIterator[bytes],
    token: str | None = None,
    options: dict[str, Any] | None = None,
    realtime: bool = True,
    max_reconnects: int = 8,
    backoff_s: float = 0.25,
    max_replay_ms: float = 10_000,
    on_partial: Callable[[str], None] | None = None,
    on_final: Callable[[dict[str, Any]], None] | None = None,
    on_close: Callable[[int | None, str], None] | None = None,
) -> StreamOutcome:
    """Like :func:`stream_pcm`, but reconnect after a retryable close and resume where the finals stopped.

    Frames are paced at real time by a producer that keeps going while the client reconnects (frames meanwhile
    wait in the replay buffer). Each connection sends the options with ``start_offset_ms`` (and ``resume``
    after the first), then the unacknowledged frames, then live frames; ``{"eof": true}`` once all frames are
    out. Ends on a normal close after eof, a close that is not retryable, or ``max_reconnects`` failures in a
    row. The outcome holds the finals of every connection in order and each connection's close code;
    ``on_close(code, reason)`` hears of each close as it happens (``None``: the connection could not be made).
    """
    outcome = StreamOutcome()
    buffer = ReplayBuffer(max_replay_ms)
    link = _Link()
    all_sent = asyncio.Event()
    target = url + (("&" if "?" in url else "?") + f"token={token}" if token else "")

    async def send_eof(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"eof": True}))

    async def produce() -> None:
        start = time.monotonic()
        sent_ms = 0.0
        async for frame in frames if isinstance(frames, AsyncIterator) else _aiter(frames):
            if realtime:
                delay = start + sent_ms / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            buffer.push(frame)
            sent_ms += len(frame) / BYTES_PER_MS
            if link.ws is not None:
                with contextlib.suppress(ConnectionClosed):  # the connection loop reconnects and replays it
                    await link.ws.send(frame)
        outcome.audio_sent_s = sent_ms / 1000
        all_sent.set()
        if link.ws is not None:
            await send_eof(link.ws)

    producer = asyncio.create_task(produce())
    failures = 0
    try:
        while True:
            code: int | None = None
            try:
                async with connect(target, max_size=2**20, proxy=None) as ws:
                    failures = 0
                    first = dict(options or {})
                    first["start_offset_ms"] = round(buffer.replay_start_ms())
                    if outcome.stream_id:
                        first["resume"] = outcome.stream_id
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(json.dumps(first))
                        index = 0
                        while index < len(buffer.frames):  # the producer may append while this replays
                            await ws.send(buffer.frames[index][1])
                            index += 1
                        link.ws = ws  # no await since the last length check: no frame falls between
                        if all_sent.is_set():
                            await send_eof(ws)
                        async for raw in ws:
                            _on_message(json.loads(raw), outcome, buffer, on_partial, on_final)
                    link.ws = None
                    code = ws.close_code
                    outcome.close_reason = ws.close_reason or ""
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                link.ws = None
                outcome.close_reason = f"connect failed: {exc}"
            outcome.close_code = code
            if code is not None:
                outcome.close_codes.append(code)
            if on_close:
                on_close(code, outcome.close_reason)
            if code == 1000 and all_sent.is_set():
                return outcome
            if code is not None and code not in RETRYABLE_CLOSE_CODES and code != 1000:
                return outcome
            failures += 1
            if failures > max_reconnects:
                return outcome
            outcome.reconnects += 1
            await asyncio.sleep(min(5.0, backoff_s * 2 ** (failures - 1)))
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)


def _on_message(
    message: dict[str, Any],
    outcome: StreamOutcome,
    buffer: ReplayBuffer,
    on_partial: Callable[[str], None] | None,
    on_final: Callable[[dict[str, Any]], None] | None,
) -> None:
    now = time.monotonic()
    if "partial" in message:
        outcome.partials.append((now, message["partial"]))
        if on_partial:
            on_partial(message["partial"])
    elif "final" in message:
        buffer.acknowledge(float(message["end_ms"]))
        outcome.finals.append((now, message))
        if on_final:
            on_final(message)
    elif "stream_id" in message:
        outcome.stream_id = outcome.stream_id or message["stream_id"]


async def _aiter(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def _stdin_frames(frame_ms: int) -> AsyncIterator[bytes]:
    size = frame_ms * BYTES_PER_MS
    reader = sys.stdin.buffer
    while chunk := await asyncio.to_thread(reader.read, size):
        yield chunk[: len(chunk) - len(chunk) % 2]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description="Stream audio to a SenseOps runtime and print transcripts")
    parser.add_argument("audio", help="WAV/FLAC/OGG/MP3 file, or - for raw 16 kHz s16le mono PCM on stdin")
    parser.add_argument("--url", default=os.environ.get("SENSEOPS_WS_URL", "ws://127.0.0.1:8000/ws/stream"))
    parser.add_argument("--token", default=os.environ.get("SENSEOPS_TOKEN"), help="JWT (or SENSEOPS_TOKEN)")
    parser.add_argument("--language", default="auto")
    parser.add_argument("--no-itn", action="store_true")
    parser.add_argument("--frame-ms", type=int, default=100)
    parser.add_argument("--fast", action="store_true", help="do not pace frames at real time")
    parser.add_argument("--no-reconnect", action="store_true", help="end at the first close instead of resuming")
    args = parser.parse_args(argv)

    frames: Iterable[bytes] | AsyncIterator[bytes]
    frames = _stdin_frames(args.frame_ms) if args.audio == "-" else pcm_frames(wav_to_pcm(args.audio), args.frame_ms)

    def show_partial(text: str) -> None:
        print(f"  … {text}", flush=True)

    def show_final(message: dict[str, Any]) -> None:
        print(
            f"[{message['start_ms']:>7}-{message['end_ms']:>7} ms] {message['final']}"
            f"  (lang={message['lang']} emotion={message['emotion']} event={message['event']}"
            f" confidence={message['confidence']})",
            flush=True,
        )

    stream = stream_pcm if args.no_reconnect else stream_pcm_resilient
    outcome = asyncio.run(
        stream(
            args.url,
            frames,
            token=args.token,
            options={"language": args.language, "itn": not args.no_itn},
            realtime=not args.fast,
            on_partial=show_partial,
            on_final=show_final,
        )
    )
    if outcome.close_code not in (1000, None):
        print(f"server closed the stream: {outcome.close_code} {outcome.close_reason}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
