"""Partials one per model call vs batched across sessions: interleaved A/B in one process, real engine.

    python tests/benchmarks/bench_partial_batching.py [--backend onnx-int8] [--streams 4,8,16,24]

One *round* = one partial for each of N open segments (window lengths drawn from the streaming
benchmark's utterances: 0.3-4 s). Each round is decoded three ways, interleaved (A, B, C, A, B, C, ...),
and the median of ``--rounds`` is printed:

* singles: one model call per partial (the scheduler before issue 13);
* capped N s: :func:`senseops_runtime.scheduler.choose_partials` with a padded-audio budget of N s
  (``--budgets``; the default budget is what the scheduler does now), repeatedly, until the round is done;
* one batch: all N in one call (no budget).

From the round time: partial updates per second each stream would get if the worker did nothing else
(1 / round time), and the longest single call (how long a final arriving meanwhile waits). First, the cost
of one lone call by clip length (``--lengths``): the fixed per-call part and the per-second part are what
bound the partial updates a replica can give. Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "runtime")]

from senseops_runtime.engine.base import DecodeOptions, Engine  # noqa: E402
from senseops_runtime.engine.factory import load_engine  # noqa: E402
from senseops_runtime.scheduler import PartialBatching, choose_partials  # noqa: E402

SAMPLE_RATE = 16_000


def capped_calls(lengths: list[int], batching: PartialBatching) -> list[list[int]]:
    """The calls the scheduler makes for one round: repeated choose_partials over what is left."""
    left = list(range(len(lengths)))
    calls = []
    while left:
        chosen = choose_partials([lengths[i] for i in left], batching)
        calls.append([left[i] for i in chosen])
        left = [index for position, index in enumerate(left) if position not in set(chosen)]
    return calls


def timed_round(engine: Engine, clips: list[np.ndarray], calls: list[list[int]]) -> tuple[float, float]:
    """(total seconds, longest call seconds) to decode ``clips`` grouped as ``calls``."""
    options = DecodeOptions()
    longest = 0.0
    started = time.perf_counter()
    for call in calls:
        call_started = time.perf_counter()
        engine.transcribe_batch([clips[i] for i in call], [options] * len(call))
        longest = max(longest, time.perf_counter() - call_started)
    return time.perf_counter() - started, longest


def lone_call_ms(engine: Engine, seconds: float, rng: np.random.Generator, repeats: int = 5) -> float:
    """Median milliseconds of one model call on one clip of ``seconds`` (after two warm-up calls)."""
    clip = (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 0.05).astype(np.float32)
    options = DecodeOptions()
    for _ in range(2):
        engine.transcribe(clip, options)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.transcribe(clip, options)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> int:
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=cache / "models" / "fullsize-random-seed0-onnx")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--streams", default="4,8,16,24")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budgets", default=f"{PartialBatching().max_padded_samples / SAMPLE_RATE:g},12")
    parser.add_argument("--lengths", default="0.3,0.5,1,2,4,8", help="clip seconds for the lone-call table")
    args = parser.parse_args()
    engine = load_engine(args.model_dir, args.backend, threads=args.threads)
    rng = np.random.default_rng(0)
    print(f"lone calls, {args.backend}, {args.threads} threads, median of 5:")
    print("| clip | call | per second of audio |")
    print("|-----:|-----:|--------------------:|")
    for seconds in (float(x) for x in args.lengths.split(",")):
        ms = lone_call_ms(engine, seconds, rng)
        print(f"| {seconds:g} s | {ms:.0f} ms | {ms / seconds:.0f} ms |", flush=True)
    budgets = [float(b) for b in args.budgets.split(",")]
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for n in (int(s) for s in args.streams.split(",")):
        picker = random.Random(n)
        ways: dict[str, list[tuple[float, float]]] = {"singles": [], "one batch": []}
        for _ in range(args.rounds):
            lengths = [int(picker.uniform(0.3, 4.0) * SAMPLE_RATE) for _ in range(n)]
            clips = [(rng.standard_normal(length) * 0.1).astype(np.float32) for length in lengths]
            plans = {"singles": [[i] for i in range(n)], "one batch": [list(range(n))]}
            for budget in budgets:
                batching = PartialBatching(max_padded_samples=int(budget * SAMPLE_RATE))
                plans[f"capped {budget:g} s"] = capped_calls(lengths, batching)
            for way, calls in plans.items():
                ways.setdefault(way, []).append(timed_round(engine, clips, calls))
        for way, results in ways.items():
            total = statistics.median(r[0] for r in results)
            longest = statistics.median(r[1] for r in results)
            rows.append((n, way, total, longest))
            print(f"{n} streams, {way}: round {total * 1000:.0f} ms, longest call {longest * 1000:.0f} ms", flush=True)
    print(f"\nload after: {os.getloadavg()[0]:.2f}; {args.backend}, {args.threads} threads, median of {args.rounds}")
    print("| streams | partials per call | round (one partial each) | updates/s per stream | longest call |")
    print("|--------:|-------------------|-------------------------:|---------------------:|-------------:|")
    for n, way, total, longest in rows:
        print(f"| {n:>7} | {way:17} | {total * 1000:>21.0f} ms | {1 / total:>20.2f} | {longest * 1000:>9.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
