"""One scheduler per process: all model calls of all sessions and requests go through it.

By default one worker thread runs the model (torch engines are not thread-safe); ONNX Runtime sessions are,
and with ``workers`` > 1 that many model calls run at once, each taking the next batch when it is free (on a
CPU server, one single-threaded call per core beats one call spread over all cores: small calls use
intra-op threads poorly). The event loop only enqueues and awaits.
Jobs are taken by priority (finals and uploads before partials). Finals are decoded alone, so each equals
an offline decode of its segment; uploads are batched up to ``max_batch`` clips per model call.

Partials are submitted with a *source* (:meth:`DecodeScheduler.submit_latest`) that is read when the
worker picks them, so a partial that waited in the queue still decodes the newest audio instead of going
stale. Waiting partials of all sessions are batched into one model call (on CPU a call costs a fixed
~100 ms of weight traffic plus its audio, so one call for several short windows is far cheaper than one
each), oldest request first so every session gets its turn, and capped in padded audio so a final never
waits behind more than one bounded partial batch (see :func:`choose_partials`).

The queue is bounded: a full queue raises :class:`Overloaded`, which
callers turn into WebSocket close 1013 or HTTP 503. When a batched call fails, its clips are decoded
again one by one: an engine error on one clip fails only that clip's caller.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from senseops_runtime import limits
from senseops_runtime.engine.base import DecodeOptions, Engine, Transcript

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower runs first."""

    FINAL = 0
    UPLOAD = 1
    PARTIAL = 2


class Overloaded(Exception):
    """The decode queue is full; the caller should retry later."""


# A partial's audio, read when the worker picks the job; None when it is no longer wanted (segment closed).
ClipSource = Callable[[], "np.ndarray | None"]


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    clip: np.ndarray = field(compare=False)
    options: DecodeOptions = field(compare=False)
    future: asyncio.Future[Transcript] = field(compare=False)
    enqueued_at: float = field(compare=False)
    source: ClipSource | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PartialBatching:
    """How waiting partials are grouped into one model call."""

    max_clips: int = limits.PARTIAL_BATCH_MAX_CLIPS
    max_padded_samples: int = int(limits.PARTIAL_BATCH_MAX_AUDIO_S * limits.SAMPLE_RATE)
    max_padding: float = limits.PARTIAL_BATCH_MAX_PADDING


def choose_partials(lengths: list[int], batching: PartialBatching) -> list[int]:
    """Indices of the partials (``lengths`` in request order, oldest first) to decode in one call.

    The oldest request always goes, so no session starves; younger ones join, in request order, while
    the batch stays within ``max_clips``, its padded size (clips x longest clip) within
    ``max_padded_samples`` -- the bound on how long a final that arrives meanwhile waits -- and the
    padding within ``max_padding`` of the padded size: a batch only pays while the per-call cost it
    saves exceeds the padding it computes, so clips of similar length go together.
    """
    if not lengths:
        return []
    chosen = [0]
    longest = max(lengths[0], 1)
    useful = lengths[0]
    for index in range(1, len(lengths)):
        if len(chosen) >= batching.max_clips:
            break
        candidate_longest = max(longest, lengths[index])
        padded = (len(chosen) + 1) * candidate_longest
        if padded > batching.max_padded_samples:
            continue
        if padded - (useful + lengths[index]) > batching.max_padding * padded:
            continue
        chosen.append(index)
        longest = candidate_longest
        useful += lengths[index]
    return chosen


def pick_batch(queue: list[_Job], max_batch: int, batching: PartialBatching | None = None) -> list[_Job]:
    """Pop the most urgent job and the jobs that share its model call (heap order kept for the rest).

    Finals: one per call. A batch is not bit-for-bit the same computation as a clip alone (int8 dynamic
    quantisation scales its activations over the whole batch; padded shapes change float summation), and
    a final must equal an offline decode of its segment: on the full-size int8 model, 6 of 6 test
    sentences decoded as one batch came out different from each decoded alone. Uploads: up to
    ``max_batch`` per call. Partials (the lowest priority, so
    everything left is a partial): :func:`choose_partials` over all waiting partials; their clips must
    already be resolved (:meth:`DecodeScheduler._resolve_partials`).
    """
    first = heapq.heappop(queue)
    batch = [first]
    if first.priority == Priority.PARTIAL:
        waiting = [first] + [heapq.heappop(queue) for _ in range(len(queue))]
        waiting.sort()
        chosen = set(choose_partials([len(job.clip) for job in waiting], batching or PartialBatching()))
        batch = [job for index, job in enumerate(waiting) if index in chosen]
        for index, job in enumerate(waiting):
            if index not in chosen:
                heapq.heappush(queue, job)
        return batch
    limit = 1 if first.priority == Priority.FINAL else max_batch
    while queue and len(batch) < limit and queue[0].priority == first.priority:
        batch.append(heapq.heappop(queue))
    return batch


# Observer hooks for metrics: (batch kinds, decode seconds, audio seconds) and queue depth.
DecodeObserver = Callable[[list[Priority], float, float], None]


class DecodeScheduler:
    """Serialises model calls off the event loop; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        max_pending: int,
        max_batch: int,
        on_decode: DecodeObserver | None = None,
        on_depth: Callable[[int], None] | None = None,
        partial_batching: PartialBatching | None = None,
        workers: int = 1,
    ) -> None:
        self.engine = engine
        self.max_pending = max_pending
        self.max_batch = max(1, max_batch)
        self.workers = max(1, workers)
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._free = asyncio.Semaphore(self.workers)  # model calls that may start now
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="decode")
        self._worker: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._on_decode = on_decode
        self._on_depth = on_depth
        self.partial_batching = partial_batching or PartialBatching()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the batch being decoded)."""
        return len(self._queue)

    def start(self) -> None:
        """Start the worker task on the running loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="decode-scheduler")

    async def stop(self) -> None:
        """Cancel waiting jobs and stop the worker."""
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for call in list(self._calls):
            call.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        for job in self._queue:
            if not job.future.done():
                job.future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, clip: np.ndarray, options: DecodeOptions, priority: Priority) -> asyncio.Future[Transcript]:
        """Enqueue a decode; raises :class:`Overloaded` when the queue is full.

        Waiting partials do not count against finals and uploads: there is at most one per stream, and
        they must never make a final fail."""
        waiting = len(self._queue)
        if priority != Priority.PARTIAL:
            waiting -= sum(1 for job in self._queue if job.priority == Priority.PARTIAL)
        if waiting >= self.max_pending:
            raise Overloaded(f"decode queue full ({self.max_pending} waiting); retry shortly")
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, _Job(int(priority), next(self._seq), clip, options, future, time.monotonic()))
        self._report_depth()
        self._wakeup.set()
        return future

    def submit_latest(self, source: ClipSource, options: DecodeOptions) -> asyncio.Future[Transcript]:
        """Enqueue a partial whose clip ``source()`` gives when the worker picks it (None: drop it, the
        future then gets an empty transcript); raises :class:`Overloaded` when the queue is full."""
        if len(self._queue) >= self.max_pending:
            raise Overloaded(f"decode queue full ({self.max_pending} waiting); retry shortly")
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        empty = np.zeros(0, dtype=np.float32)
        job = _Job(int(Priority.PARTIAL), next(self._seq), empty, options, future, time.monotonic(), source)
        heapq.heappush(self._queue, job)
        self._report_depth()
        self._wakeup.set()
        return future

    def _resolve_partials(self) -> None:
        """Read the sources of waiting partials (only when a partial batch is next); drop unwanted ones."""
        if not self._queue or self._queue[0].priority != Priority.PARTIAL:
            return
        kept = []
        for job in self._queue:
            if job.source is not None and not job.future.done():
                clip = job.source()
                if clip is None or len(clip) == 0:
                    job.future.set_result(Transcript(text=""))
                    continue
                job.clip = clip
            if not job.future.cancelled():
                kept.append(job)
        heapq.heapify(kept)
        self._queue[:] = kept

    async def decode(self, clip: np.ndarray, options: DecodeOptions, priority: Priority) -> Transcript:
        """Submit and wait for the transcript."""
        return await self.submit(clip, options, priority)

    def _report_depth(self) -> None:
        if self._on_depth:
            self._on_depth(len(self._queue))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # A batch is picked only once a worker is free, so partials are cut from the newest audio.
            await self._free.acquire()
            batch = await self._next_batch()
            call = loop.create_task(self._call(loop, batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _next_batch(self) -> list[_Job]:
        """Wait for work and pop the next batch (priority order, partials resolved)."""
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._resolve_partials()
            if not self._queue:
                self._report_depth()
                continue
            picked = pick_batch(self._queue, self.max_batch, self.partial_batching)
            batch = [job for job in picked if not job.future.done()]
            self._report_depth()
            if batch:
                return batch

    async def _call(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        """One model call on a free worker; settles the batch's futures and frees the worker."""
        try:
            started = time.perf_counter()
            outcomes = await self._decode_batch(loop, batch)
            elapsed = time.perf_counter() - started
            if self._on_decode:
                audio_s = sum(len(job.clip) for job in batch) / 16_000
                self._on_decode([Priority(job.priority) for job in batch], elapsed, audio_s)
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)
        finally:
            self._free.release()

    async def _decode_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> list[Transcript | Exception]:
        """One model call for the batch; if it fails, each clip alone, so one bad clip fails only its caller."""
        try:
            if len(batch) == 1:
                job = batch[0]
                return [await loop.run_in_executor(self._executor, self.engine.transcribe, job.clip, job.options)]
            clips = [job.clip for job in batch]
            options = [job.options for job in batch]
            return list(await loop.run_in_executor(self._executor, self.engine.transcribe_batch, clips, options))
        except Exception as exc:
            if len(batch) == 1:
                log.warning("decode failed for one clip (%d samples): %s", len(batch[0].clip), exc)
                return [exc]
        log.warning("batch of %d failed; decoding its clips one at a time", len(batch))
        outcomes: list[Transcript | Exception] = []
        for job in batch:
            outcomes.extend(await self._decode_batch(loop, [job]))
        return outcomes
