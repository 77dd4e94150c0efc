"""Offline real-time factor of full-size SenseVoice-Small: our engines vs FunASR's AutoModel.generate.

    .venv/bin/python tests/benchmarks/bench_offline_rtf.py [--model-dir DIR] [--threads 2] [--repeats 3]

The model is the full-size architecture (≈234 M parameters) with random weights
(``tests.testmodel.build_fullsize_random``): its cost is the real model's cost, its text is
noise. Clips of 5, 10 and 30 s are espeak-ng speech (the known sentences, repeated with short pauses).
Every method runs in this one process on the same weights: ``funasr-generate`` is
``AutoModel.generate`` (FunASR's own path), ``torch`` is our torch engine (FunASR modules, best-path
graph), ``onnx-fp32``/``onnx-int8`` are ONNX Runtime on our export. RTF = decode seconds / audio
seconds (features included); each method runs once per round, round-robin, after a warm-up run;
the table shows the median and the best of ``--repeats`` rounds (the best is the least disturbed by
other processes on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "runtime")]

from senseops_common import speech  # noqa: E402
from senseops_runtime.engine import DecodeOptions, load_engine  # noqa: E402
from senseops_runtime.engine.export import ensure_exported  # noqa: E402
from tests.testmodel import KNOWN_SENTENCES, build_fullsize_random  # noqa: E402

SAMPLE_RATE = 16_000


def make_clip(seconds: float) -> np.ndarray:
    """espeak-ng speech of the known sentences, repeated with 0.3 s pauses, cut to ``seconds``."""
    pieces: list[np.ndarray] = []
    total = 0
    index = 0
    while total < seconds * SAMPLE_RATE:
        audio = speech.pad_with_silence(KNOWN_SENTENCES[index % len(KNOWN_SENTENCES)].synthesize(), 0, 0.3)
        pieces.append(audio)
        total += audio.size
        index += 1
    return np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (for the table header)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    """Build/export the model if needed, measure, print the table."""
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=cache / "models" / "fullsize-random-seed0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--durations", default="5,10,30", help="clip lengths in seconds, comma separated")
    parser.add_argument(
        "--methods", default="funasr-generate,torch,onnx-fp32,onnx-int8", help="comma separated subset"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if not (args.model_dir / "model.pt").is_file():
        print(f"building full-size random model in {args.model_dir} …", flush=True)
        build_fullsize_random(args.model_dir)
    methods = args.methods.split(",")
    onnx_dir = args.model_dir
    if any(m.startswith("onnx") for m in methods):
        onnx_dir = args.model_dir.with_name(args.model_dir.name + "-onnx")
        started = time.perf_counter()
        ensure_exported(args.model_dir, onnx_dir)
        print(f"ONNX export ready in {onnx_dir} ({time.perf_counter() - started:.0f} s)", flush=True)

    durations = [float(d) for d in args.durations.split(",")]
    clips = {d: make_clip(d) for d in durations}
    options = DecodeOptions(language="auto", itn=True)
    engines: dict[str, Any] = {}
    for method in methods:
        backend = "torch" if method == "funasr-generate" else method
        if backend not in engines:
            model_dir = args.model_dir if backend == "torch" else onnx_dir
            engines[backend] = load_engine(model_dir, backend, threads=args.threads, warm_up=True)

    def runner(method: str, clip: np.ndarray) -> Callable[[], object]:
        if method == "funasr-generate":
            return lambda: engines["torch"].funasr_generate(clip, options)
        return lambda: engines[method].transcribe(clip, options)

    # Round-robin over methods inside each repeat, so a burst of load from other processes on a shared
    # machine hits every method alike instead of whichever happened to be running.
    samples: dict[tuple[str, float], list[float]] = {(m, d): [] for m in methods for d in durations}
    for method in methods:
        for seconds in durations:
            runner(method, clips[seconds])()  # warm-up (allocator, caches) per shape
    for round_index in range(args.repeats):
        for seconds in durations:
            for method in methods:
                run = runner(method, clips[seconds])
                started = time.perf_counter()
                run()
                samples[(method, seconds)].append((time.perf_counter() - started) / seconds)
        print(f"  round {round_index + 1}/{args.repeats} done", flush=True)

    torch_engine = engines.get("torch")
    parameters = sum(p.numel() for p in torch_engine.auto_model.model.parameters()) if torch_engine else 0
    load = os.getloadavg()
    print()
    print(f"Offline RTF (lower is better) — full-size SenseVoice-Small, random init, {parameters / 1e6:.0f} M params")
    print(
        f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs, {args.threads} threads; {args.repeats} rounds; "
        f"load average at end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )
    print("Each cell: median / best of the rounds.")
    print("| clip | " + " | ".join(methods) + " |")
    print("|" + "---|" * (len(methods) + 1))
    for seconds in durations:
        cells = []
        for method in methods:
            values = samples[(method, seconds)]
            cells.append(f"{statistics.median(values):.4f} / {min(values):.4f}")
        print(f"| {seconds:.0f} s | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
