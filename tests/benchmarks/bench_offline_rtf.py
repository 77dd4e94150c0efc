"""Offline real-time factor of full-size SenseVoice-Small: our engines vs FunASR's AutoModel.generate.

    .venv/bin/python tests/benchmarks/bench_offline_rtf.py [--model-dir DIR] [--threads 2] [--repeats 3]

The model is the full-size architecture (≈234 M parameters) with random weights
(``senseops_common.testmodel.build_fullsize_random``): its cost is the real model's cost, its text is
noise. Clips of 5, 10 and 30 s are espeak-ng speech (the known sentences, repeated with short pauses).
Every method runs in this one process on the same weights: ``funasr-generate`` is
``AutoModel.generate`` (FunASR's own path), ``torch`` is our torch engine (FunASR modules, best-path
graph), ``onnx-fp32``/``onnx-int8`` are ONNX Runtime on our export. RTF = decode seconds / audio
seconds (features included), median of ``--repeats`` runs after one warm-up run. Prints a table.
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
from senseops_common.testmodel import KNOWN_SENTENCES, build_fullsize_random  # noqa: E402
from senseops_runtime.engine import DecodeOptions, load_engine  # noqa: E402
from senseops_runtime.engine.export import ensure_exported  # noqa: E402

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


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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
    parser.add_argument("--repeats", type=int, default=3)
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
    results: dict[str, dict[float, float]] = {}
    torch_engine = None
    for method in methods:
        backend = "torch" if method == "funasr-generate" else method
        if backend == "torch" and torch_engine is not None:
            engine = torch_engine
        else:
            model_dir = args.model_dir if backend == "torch" else onnx_dir
            engine = load_engine(model_dir, backend, threads=args.threads, warm_up=True)
            if backend == "torch":
                torch_engine = engine
        results[method] = {}
        for seconds, clip in clips.items():
            if method == "funasr-generate":
                def run(clip: np.ndarray = clip, engine: Any = engine) -> object:
                    return engine.funasr_generate(clip, options)
            else:
                def run(clip: np.ndarray = clip, engine: Any = engine) -> object:
                    return engine.transcribe(clip, options)
            results[method][seconds] = median_seconds(run, args.repeats) / seconds
            print(f"  {method:16s} {seconds:4.0f} s clip: RTF {results[method][seconds]:.4f}", flush=True)

    parameters = sum(p.numel() for p in torch_engine.auto_model.model.parameters()) if torch_engine else 0
    print()
    print(f"Offline RTF (lower is better) — full-size SenseVoice-Small, random init, {parameters / 1e6:.0f} M params")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs, {args.threads} threads; median of {args.repeats}")
    header = "| clip | " + " | ".join(methods) + " |"
    print(header)
    print("|" + "---|" * (len(methods) + 1))
    for seconds in durations:
        row = " | ".join(f"{results[m][seconds]:.4f}" for m in methods)
        print(f"| {seconds:.0f} s | {row} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
