"""The decode scheduler: priorities, batching, bounded queue, errors, and an event loop that stays free.

The engine here is a stand-in (``SlowEngine``) that records what it was asked; the real engines are
exercised by the server tests.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from senseops_runtime.engine.base import DecodeOptions, Transcript
from senseops_runtime.scheduler import DecodeScheduler, Overloaded, PartialBatching, Priority, choose_partials

OPTIONS = DecodeOptions()


class SlowEngine:
    """Stand-in engine: sleeps ``delay_s`` per call, names each clip by its length, records batches."""

    name, version, backend = "stand-in", "0", "none"

    def __init__(self, delay_s: float = 0.05, fail_on: int | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.running = 0
        self.most_at_once = 0
        self._count = threading.Lock()

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcript:
        return self.transcribe_batch([audio], [options])[0]

    def transcribe_batch(self, clips: list[np.ndarray], options: list[DecodeOptions]) -> list[Transcript]:
        self.threads.add(threading.current_thread().name)
        self.batches.append([len(c) for c in clips])
        with self._count:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay_s)  # blocking, like a real model call
        with self._count:
            self.running -= 1
        if self.fail_on is not None and any(len(c) == self.fail_on for c in clips):
            raise RuntimeError("model exploded")
        return [Transcript(text=str(len(c))) for c in clips]


def clip(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32)


async def test_priorities_and_batching() -> None:
    engine = SlowEngine()
    scheduler = DecodeScheduler(engine, max_pending=16, max_batch=2)
    scheduler.start()
    blocker = scheduler.submit(clip(1), OPTIONS, Priority.PARTIAL)  # occupies the worker
    await asyncio.sleep(0.01)
    partials = [scheduler.submit(clip(10 + i), OPTIONS, Priority.PARTIAL) for i in range(3)]
    finals = [scheduler.submit(clip(100 + i), OPTIONS, Priority.FINAL) for i in range(3)]
    results = await asyncio.gather(blocker, *partials, *finals)
    assert [r.text for r in results] == ["1", "10", "11", "12", "100", "101", "102"]
    # Finals first, in order and one per call (a final must equal an offline decode of its segment), then
    # the waiting partials in one call; kinds never mixed.
    assert engine.batches == [[1], [100], [101], [102], [10, 11, 12]]
    assert engine.threads == {"decode_0"}
    await scheduler.stop()


async def test_bounded_queue_raises_overloaded() -> None:
    scheduler = DecodeScheduler(SlowEngine(delay_s=0.2), max_pending=2, max_batch=1)
    scheduler.start()
    first = scheduler.submit(clip(1), OPTIONS, Priority.FINAL)
    await asyncio.sleep(0.02)  # the worker took it
    waiting = [scheduler.submit(clip(2), OPTIONS, Priority.FINAL), scheduler.submit(clip(3), OPTIONS, Priority.FINAL)]
    with pytest.raises(Overloaded, match="queue full"):
        scheduler.submit(clip(4), OPTIONS, Priority.FINAL)
    await asyncio.gather(first, *waiting)
    await scheduler.stop()


async def test_engine_error_on_one_clip_fails_only_that_clip_and_the_worker_survives() -> None:
    engine = SlowEngine(fail_on=7)
    scheduler = DecodeScheduler(engine, max_pending=8, max_batch=4)
    scheduler.start()
    blocker = scheduler.submit(clip(1), OPTIONS, Priority.FINAL)
    await asyncio.sleep(0.01)
    doomed = scheduler.submit(clip(7), OPTIONS, Priority.UPLOAD)
    innocent = scheduler.submit(clip(8), OPTIONS, Priority.UPLOAD)
    await blocker
    with pytest.raises(RuntimeError, match="model exploded"):
        await doomed
    assert (await innocent).text == "8"
    # The failed batch was decoded again clip by clip.
    assert engine.batches == [[1], [7, 8], [7], [8]]
    assert (await scheduler.decode(clip(9), OPTIONS, Priority.FINAL)).text == "9"
    await scheduler.stop()


async def test_event_loop_stays_responsive_during_decodes() -> None:
    scheduler = DecodeScheduler(SlowEngine(delay_s=0.3), max_pending=8, max_batch=1)
    scheduler.start()
    work = [scheduler.submit(clip(i + 1), OPTIONS, Priority.FINAL) for i in range(3)]
    lags = []
    for _ in range(20):
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - before - 0.01)
    await asyncio.gather(*work)
    # If a model call ran on the loop, one tick would stall for ~0.3 s.
    assert max(lags) < 0.15, lags
    await scheduler.stop()


@pytest.mark.parametrize(
    ("lengths", "max_clips", "max_padded", "max_padding", "chosen"),
    [
        pytest.param([], 4, 100, 1.0, [], id="nothing-waiting"),
        pytest.param([10, 10, 10], 4, 100, 0.0, [0, 1, 2], id="all-fit"),
        pytest.param([10, 10, 10, 10, 10], 3, 1000, 0.0, [0, 1, 2], id="clip-cap"),
        pytest.param([10, 40, 10, 10], 4, 60, 1.0, [0, 2, 3], id="long-one-skipped-younger-short-ones-join"),
        pytest.param([500, 10, 10], 4, 100, 1.0, [0], id="oldest-always-goes-even-over-budget"),
        pytest.param([30, 30, 30, 30], 8, 100, 0.0, [0, 1, 2], id="padded-budget"),
        pytest.param([10, 20, 30], 8, 90, 1.0, [0, 1, 2], id="budget-counts-the-longest"),
        pytest.param([10, 20, 31], 8, 90, 1.0, [0, 1], id="one-over-budget"),
        # Padding: [10, 20] pads 10 of 40 (25 %); adding 40 would pad 50 of 120.
        pytest.param([10, 20, 40, 18], 8, 1000, 0.25, [0, 1, 3], id="padding-cap-skips-a-long-one"),
        pytest.param([100, 10, 90, 80], 8, 1000, 0.25, [0, 2, 3], id="padding-cap-skips-a-short-one"),
        pytest.param([100, 76], 8, 1000, 0.12, [0, 1], id="padding-at-the-cap-joins"),
        pytest.param([100, 75], 8, 1000, 0.12, [0], id="padding-over-the-cap"),
    ],
)
def test_choose_partials(
    lengths: list[int], max_clips: int, max_padded: int, max_padding: float, chosen: list[int]
) -> None:
    assert choose_partials(lengths, PartialBatching(max_clips, max_padded, max_padding)) == chosen


async def test_partials_read_their_audio_when_picked_and_are_dropped_when_unwanted() -> None:
    engine = SlowEngine(delay_s=0.1)
    scheduler = DecodeScheduler(engine, max_pending=8, max_batch=1)
    scheduler.start()
    blocker = scheduler.submit(clip(1), OPTIONS, Priority.FINAL)
    await asyncio.sleep(0.02)
    audio = {"a": 5, "b": 6}
    a = scheduler.submit_latest(lambda: clip(audio["a"]), OPTIONS)
    gone = scheduler.submit_latest(lambda: None, OPTIONS)
    b = scheduler.submit_latest(lambda: clip(audio["b"]), OPTIONS)
    audio["a"], audio["b"] = 50, 60  # more audio arrived while they waited
    assert [r.text for r in await asyncio.gather(blocker, a, gone, b)] == ["1", "50", "", "60"]
    assert engine.batches == [[1], [50, 60]]
    await scheduler.stop()


async def test_waiting_partials_never_make_a_final_overloaded() -> None:
    scheduler = DecodeScheduler(SlowEngine(delay_s=0.2), max_pending=2, max_batch=1)
    scheduler.start()
    blocker = scheduler.submit(clip(1), OPTIONS, Priority.FINAL)
    await asyncio.sleep(0.02)
    partials = [scheduler.submit_latest(lambda: clip(3), OPTIONS) for _ in range(2)]
    with pytest.raises(Overloaded):
        scheduler.submit_latest(lambda: clip(3), OPTIONS)
    finals = [scheduler.submit(clip(2), OPTIONS, Priority.FINAL) for _ in range(2)]
    assert [r.text for r in await asyncio.gather(blocker, *finals, *partials)] == ["1", "2", "2", "3", "3"]
    await scheduler.stop()


@pytest.mark.parametrize("workers", [1, 2, 3])
async def test_workers_run_that_many_model_calls_at_once_and_finals_still_go_first(workers: int) -> None:
    engine = SlowEngine(delay_s=0.05)
    scheduler = DecodeScheduler(engine, max_pending=32, max_batch=1, workers=workers)
    scheduler.start()
    blockers = [scheduler.submit(clip(1 + i), OPTIONS, Priority.UPLOAD) for i in range(workers)]  # every worker busy
    await asyncio.sleep(0.01)
    partial = scheduler.submit(clip(50), OPTIONS, Priority.PARTIAL)
    finals = [scheduler.submit(clip(100 + i), OPTIONS, Priority.FINAL) for i in range(4)]
    results = await asyncio.gather(*blockers, partial, *finals)
    assert [r.text for r in results] == [str(1 + i) for i in range(workers)] + ["50", "100", "101", "102", "103"]
    assert engine.most_at_once == workers
    assert len(engine.threads) == workers
    # The finals were all taken before the partial, whichever worker ran them.
    order = [batch[0] for batch in engine.batches]
    assert order.index(50) > max(order.index(100 + i) for i in range(4))
    await scheduler.stop()


@pytest.mark.parametrize(
    ("env", "workers", "error"),
    [
        ({}, 1, None),
        ({"SENSEOPS_BACKEND": "onnx-int8", "SENSEOPS_DECODE_WORKERS": "2"}, 2, None),
        ({"SENSEOPS_BACKEND": "onnx-fp32", "SENSEOPS_DECODE_WORKERS": "4"}, 4, None),
        ({"SENSEOPS_BACKEND": "torch", "SENSEOPS_DECODE_WORKERS": "2"}, 0, "needs an ONNX backend"),
        ({"SENSEOPS_BACKEND": "onnx-int8", "SENSEOPS_DECODE_WORKERS": "0"}, 0, "greater than or equal to 1"),
    ],
)
def test_decode_workers_setting(env: dict[str, str], workers: int, error: str | None) -> None:
    from senseops_runtime.settings import RuntimeSettings

    if error:
        with pytest.raises(ValueError, match=error):
            RuntimeSettings.from_env(env)
    else:
        assert RuntimeSettings.from_env(env).decode_workers == workers
