"""One scheduler per process: all model calls of all sessions and requests go through it.

Engines are not thread-safe, so one worker thread runs them; the event loop only enqueues and awaits.
Jobs are taken by priority (finals and uploads before partials) and batched up to ``max_batch`` clips of
the same priority per model call. The queue is bounded: a full queue raises :class:`Overloaded`, which
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

from senseops_runtime.engine.base import DecodeOptions, Engine, Transcript

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower runs first."""

    FINAL = 0
    UPLOAD = 1
    PARTIAL = 2


class Overloaded(Exception):
    """The decode queue is full; the caller should retry later."""


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    clip: np.ndarray = field(compare=False)
    options: DecodeOptions = field(compare=False)
    future: asyncio.Future[Transcript] = field(compare=False)
    enqueued_at: float = field(compare=False)


def pick_batch(queue: list[_Job], max_batch: int) -> list[_Job]:
    """Pop the most urgent job and up to ``max_batch - 1`` more of the same priority (heap order kept).

    Partials are never batched: a batch is padded to its longest clip and cannot be interrupted, so a
    batch of partials would hold up the next final for several partial decodes; one partial at a time
    bounds that wait to a single (window-capped) decode.
    """
    first = heapq.heappop(queue)
    batch = [first]
    limit = 1 if first.priority == Priority.PARTIAL else max_batch
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
    ) -> None:
        self.engine = engine
        self.max_pending = max_pending
        self.max_batch = max(1, max_batch)
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._worker: asyncio.Task[None] | None = None
        self._on_decode = on_decode
        self._on_depth = on_depth

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
        for job in self._queue:
            if not job.future.done():
                job.future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, clip: np.ndarray, options: DecodeOptions, priority: Priority) -> asyncio.Future[Transcript]:
        """Enqueue a decode; raises :class:`Overloaded` when the queue is full."""
        if len(self._queue) >= self.max_pending:
            raise Overloaded(f"decode queue full ({self.max_pending} waiting); retry shortly")
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, _Job(int(priority), next(self._seq), clip, options, future, time.monotonic()))
        self._report_depth()
        self._wakeup.set()
        return future

    async def decode(self, clip: np.ndarray, options: DecodeOptions, priority: Priority) -> Transcript:
        """Submit and wait for the transcript."""
        return await self.submit(clip, options, priority)

    def _report_depth(self) -> None:
        if self._on_depth:
            self._on_depth(len(self._queue))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [job for job in pick_batch(self._queue, self.max_batch) if not job.future.cancelled()]
            self._report_depth()
            if not batch:
                continue
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
