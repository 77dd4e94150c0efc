"""The CUDA path, measured: offline RTF and batched throughput of the torch engine, then streams per GPU.

    python tests/benchmarks/bench_gpu.py [--device cuda:0] [--speech speech.npz] [--clients 16,32,64,128]

Same full-size random-init SenseVoice-Small as the CPU benchmarks (``build_fullsize_random``: the real model's
cost, meaningless text), built on the machine that runs this. Three tables:

1. offline, one clip per call: RTF (decode seconds / audio seconds, features included) for 5, 10 and 30 s
   espeak-ng clips, median and best of ``--repeats`` after a warm-up;
2. offline, batched: ``B`` clips of 10 s in one ``transcribe_batch`` call: call latency, throughput in audio
   seconds per wall second, and the peak GPU memory torch allocated for it;
3. streaming: ``bench_streaming`` with the torch backend on ``--device`` (one runtime process, real-time
   clients on loopback), at the ``--clients`` levels with the server's default batching and at the
   ``--gpu-clients`` levels with :data:`GPU_BATCHING` (bigger partial and final batches, which a GPU absorbs
   at little extra latency). An empty list skips that table.

A GPU machine without espeak-ng: write the clips here first (``--write-speech speech.npz``, no GPU needed), carry
the file, and pass ``--speech speech.npz`` there; synthesis is then a lookup of the same samples.
Prints tables; not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "runtime")]

from senseops_common import speech  # noqa: E402
from tests.testmodel import KNOWN_SENTENCES  # noqa: E402

# Batching settings for a GPU replica (A/B arm of the streaming table): partials of up to 64 sessions and
# finals of up to 16 segments per model call.
GPU_BATCHING = (
    "SENSEOPS_SCHEDULER_MAX_BATCH=16",
    "SENSEOPS_PARTIAL_BATCH_MAX_CLIPS=64",
    "SENSEOPS_PARTIAL_BATCH_MAX_AUDIO_S=120",
)


def speech_key(text: str, voice: str) -> str:
    return f"{voice}\x1f{text}"


def write_speech(path: Path) -> None:
    """Synthesize every known sentence with espeak-ng and save the samples (the GPU machine has no espeak-ng)."""
    clips = {speech_key(s.text, s.voice): s.synthesize() for s in KNOWN_SENTENCES}
    np.savez_compressed(path, **clips)
    print(f"wrote {len(clips)} clips to {path}")


def use_recorded_speech(path: Path) -> None:
    """Make ``speech.synthesize`` return the samples recorded by :func:`write_speech` (same arguments only)."""
    recorded = dict(np.load(path))
    real = speech.synthesize

    def lookup(text: str, voice: str = speech.ENGLISH, **kwargs: object) -> np.ndarray:
        key = speech_key(text, voice)
        if kwargs or key not in recorded:
            return real(text, voice, **kwargs)  # type: ignore[arg-type]
        return recorded[key].copy()

    speech.synthesize = lookup  # type: ignore[assignment]


def gpu_name(device: str) -> str:
    import torch

    if not device.startswith("cuda"):
        return "no GPU (cpu)"
    return str(torch.cuda.get_device_name(torch.device(device)))


def offline_tables(model_dir: Path, device: str, repeats: int, batches: list[int]) -> None:
    import torch

    from senseops_runtime.engine import DecodeOptions, load_engine
    from tests.benchmarks.bench_offline_rtf import make_clip

    engine = load_engine(model_dir, "torch", device)
    options = DecodeOptions(itn=True)
    print(f"\nOffline, torch engine on {device} ({gpu_name(device)}), one clip per call")
    print(f"| {'clip':>5} | {'RTF median':>10} | {'RTF best':>8} | {'ms median':>9} |")
    print("|------:|-----------:|---------:|----------:|")
    for seconds in (5.0, 10.0, 30.0):
        clip = make_clip(seconds)
        engine.transcribe(clip, options)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine.transcribe(clip, options)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        print(
            f"| {seconds:>3.0f} s | {median / seconds:>10.4f} | {min(times) / seconds:>8.4f} | {median * 1000:>9.1f} |",
            flush=True,
        )

    clip = make_clip(10.0)
    print(f"\nOffline, batched: B clips of 10 s in one call on {device}")
    print(f"| {'B':>4} | {'call ms median':>14} | {'audio s per s':>13} | {'peak GPU MiB':>12} |")
    print("|-----:|---------------:|--------------:|-------------:|")
    for size in batches:
        clips = [clip] * size
        engine.transcribe_batch(clips, [options] * size)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(max(3, repeats // 2)):
            started = time.perf_counter()
            engine.transcribe_batch(clips, [options] * size)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
        print(f"| {size:>4} | {median * 1000:>14.1f} | {size * 10.0 / median:>13.0f} | {peak:>12.0f} |", flush=True)
    del engine
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def nvidia_smi() -> str:
    try:
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except OSError:
        return "nvidia-smi not found"


def main() -> int:
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--model-dir", type=Path, default=cache / "models" / "fullsize-random-seed0")
    parser.add_argument("--speech", type=Path, help="clips written by --write-speech (machines without espeak-ng)")
    parser.add_argument("--write-speech", type=Path, metavar="FILE", help="write the clips and exit")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--clients", default="16,32,64,128", help="streaming levels (empty: no streaming)")
    parser.add_argument("--gpu-clients", default="64,128,192", help="levels with the GPU batching settings")
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--skip-offline", action="store_true")
    args = parser.parse_args()

    if args.write_speech:
        write_speech(args.write_speech)
        return 0
    if args.speech:
        use_recorded_speech(args.speech)
    print(f"GPU: {nvidia_smi()}", flush=True)

    from tests.benchmarks import bench_streaming

    model_dir = bench_streaming.ensure_model(args.model_dir, "torch")
    if not args.skip_offline:
        offline_tables(model_dir, args.device, args.repeats, [int(b) for b in args.batches.split(",")])
    common = [f"--model-dir={model_dir}", "--backends=torch", f"--device={args.device}"]
    common += [f"--utterances={args.utterances}", "--threads=4"]
    if args.clients:
        print("\nStreaming, default batching", flush=True)
        bench_streaming.main([*common, f"--clients={args.clients}"])
    if args.gpu_clients:
        print(f"\nStreaming, GPU batching: {' '.join(GPU_BATCHING)}", flush=True)
        bench_streaming.main(
            [*common, f"--clients={args.gpu_clients}", *(f"--server-env={item}" for item in GPU_BATCHING)]
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
