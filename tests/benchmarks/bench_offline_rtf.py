"""Offline real-time factor of full-size SenseVoice-Small: our engines against the peers, side by side.

    .venv/bin/python tests/benchmarks/bench_offline_rtf.py [--model-dir DIR] [--threads 2] [--repeats 3]

The model is the full-size architecture (≈234 M parameters) with random weights
(``tests.testmodel.build_fullsize_random``): its cost is the real model's cost, its text is noise. Clips of 5,
10 and 30 s are espeak-ng speech (the known sentences, repeated with short pauses). Every method runs in this
one process on the same weights: ``funasr-generate`` is ``AutoModel.generate`` (FunASR's own path), ``torch``
is our torch engine (FunASR modules, best-path graph), ``onnx-fp32``/``onnx-int8`` are ONNX Runtime on our
export; ``sherpa-fp32``/``sherpa-int8`` are sherpa-onnx's SenseVoice recogniser (C++ on ONNX Runtime, PyPI
``sherpa-onnx``) on the same weights exported in its layout (``senseops_runtime.engine.peer_export``);
``funasr-onnx-fp32``/``funasr-onnx-int8`` are FunASR's ONNX package (PyPI ``funasr-onnx``) on the same weights
in its layout, run in a subprocess from its own virtualenv (it pins numpy<=1.26.4;
``scripts/ensure-funasr-onnx-venv.sh`` builds it, ``--funasr-onnx-python`` names it)
and driven clip by clip in the same round-robin.
A peer that cannot run gets a line saying why. RTF = decode seconds / audio seconds (features included; for
funasr-onnx its own timing of its call); each method runs once per round, round-robin, after a warm-up run;
the table shows the median and the best of ``--repeats`` rounds (the best is the least disturbed by other
processes on a shared machine), then each of our engines' ratio to the best peer, and the estimated hardware
floor: the model's multiply-accumulates per second of audio (matrix products + attention, counted from the
loaded model) over this machine's measured int8 GEMM rate (ONNX Runtime, the same threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "runtime")]

from senseops_common import speech  # noqa: E402
from senseops_runtime.engine import DecodeOptions, load_engine  # noqa: E402
from senseops_runtime.engine.export import ensure_exported, exported_dir  # noqa: E402
from senseops_runtime.engine.peer_export import export_for_funasr_onnx, export_for_sherpa  # noqa: E402
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


OURS = ("torch", "onnx-fp32", "onnx-int8")
PEERS = ("funasr-generate", "sherpa-fp32", "sherpa-int8", "funasr-onnx-fp32", "funasr-onnx-int8")
# Issue 13's offline targets: our best engine this many times faster than each peer (int8 peers, same model).
TARGETS = {"sherpa-int8": 1.5, "funasr-onnx-int8": 1.5, "funasr-generate": 4.0}
FRAMES_PER_SECOND = 100 / 6  # 10 ms fbank frames, LFR shift 6


class FunasrOnnxPeer:
    """funasr-onnx's SenseVoiceSmall in a subprocess of its own virtualenv, decoding clips on request."""

    def __init__(self, python: Path, model_dir: Path, clips: Path, threads: int, quantize: bool) -> None:
        command = [str(python), str(ROOT / "tests" / "benchmarks" / "funasr_onnx_peer.py"), str(model_dir),
                   str(clips), "--threads", str(threads)] + (["--quantize"] if quantize else [])
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        self.text = ""
        if self._reply().get("ready") is not True:
            raise RuntimeError("funasr-onnx peer did not start")

    def _reply(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            assert self._process.stderr is not None
            error = self._process.stderr.read().strip().splitlines()
            raise RuntimeError(error[-1] if error else f"exited with {self._process.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def decode(self, clip_name: str) -> float:
        """Decode one clip of the npz; returns the peer's own decode time (pipe overhead excluded)."""
        assert self._process.stdin is not None
        self._process.stdin.write(clip_name + "\n")
        self._process.stdin.flush()
        reply = self._reply()
        self.text = str(reply["text"])
        return float(reply["seconds"])

    def close(self) -> None:
        """End the subprocess."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)


def start_funasr_onnx(args: argparse.Namespace, methods: list[str], clips: dict[float, np.ndarray],
                      workdir: Path) -> tuple[dict[str, FunasrOnnxPeer], dict[str, str]]:
    """Export the funasr-onnx layout if needed and start one peer process per funasr-onnx method; a method
    that cannot start is returned with the reason instead."""
    wanted = [m for m in methods if m.startswith("funasr-onnx")]
    peers: dict[str, FunasrOnnxPeer] = {}
    failed: dict[str, str] = {}
    if not wanted:
        return peers, failed
    python = args.funasr_onnx_python
    if not python.is_file():
        return peers, {m: f"no funasr-onnx venv at {python} (run scripts/ensure-funasr-onnx-venv.sh)" for m in wanted}
    peer_dir = args.model_dir.with_name(args.model_dir.name + "-funasr-onnx")
    if not (peer_dir / "model_quant.onnx").is_file():
        started = time.perf_counter()
        export_for_funasr_onnx(args.model_dir, peer_dir)
        print(f"funasr-onnx export ready in {peer_dir} ({time.perf_counter() - started:.0f} s)", flush=True)
    npz = workdir / "clips.npz"
    np.savez(npz, **{clip_key(d): clip for d, clip in clips.items()})
    for method in wanted:
        try:
            peers[method] = FunasrOnnxPeer(python, peer_dir, npz, args.threads, quantize=method.endswith("int8"))
        except (OSError, RuntimeError, ValueError) as error:
            failed[method] = f"did not run: {error}"
    return peers, failed


def clip_key(seconds: float) -> str:
    """The clip's name in the npz handed to subprocess peers."""
    return f"clip_{seconds:g}s"


def model_macs(model: Any, seconds: float) -> float:
    """Multiply-accumulates to encode ``seconds`` of audio: every Linear weight once per frame, plus the
    attention products (scores and weighted sum, 2·T²·d per self-attention layer) — the length² part."""
    import torch

    frames = seconds * FRAMES_PER_SECOND + 4  # + the four query frames
    per_frame = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    attention = 0.0
    for module in model.modules():
        size = getattr(module, "d_k", None)
        heads = getattr(module, "h", None)
        if isinstance(size, int) and isinstance(heads, int):
            attention += 2 * frames * frames * size * heads
    return per_frame * frames + attention


def int8_gemm_rate(threads: int, rows: int = 512, inner: int = 512, cols: int = 2048, repeats: int = 20) -> float:
    """This machine's int8 GEMM rate (MAC/s) through ONNX Runtime's dynamically quantised MatMul."""
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((inner, cols)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, inner])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, cols])], [weight])
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "gemm.onnx", Path(tmp) / "gemm-int8.onnx"
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8  # what ONNX Runtime reads (onnx may write a newer IR than it supports)
        onnx.save(model, str(fp32))
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).standard_normal((rows, inner)).astype(np.float32)
        session.run(None, {"x": x})
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            session.run(None, {"x": x})
            best = min(best, time.perf_counter() - started)
    return rows * inner * cols / best


def main() -> int:
    """Build/export the model if needed, measure, print the table."""
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=cache / "models" / "fullsize-random-seed0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--durations", default="5,10,30", help="clip lengths in seconds, comma separated")
    parser.add_argument(
        "--methods",
        default="funasr-generate,sherpa-fp32,sherpa-int8,funasr-onnx-fp32,funasr-onnx-int8,torch,onnx-fp32,onnx-int8",
        help="comma separated subset"
    )
    parser.add_argument("--funasr-onnx-python", type=Path, default=cache / "venv-funasr-onnx" / "bin" / "python",
                        help="python of the funasr-onnx virtualenv (scripts/ensure-funasr-onnx-venv.sh)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if not (args.model_dir / "model.pt").is_file():
        print(f"building full-size random model in {args.model_dir} …", flush=True)
        build_fullsize_random(args.model_dir)
    methods = args.methods.split(",")
    onnx_dir = args.model_dir
    if any(m.startswith("onnx") for m in methods):
        onnx_dir = exported_dir(args.model_dir)
        started = time.perf_counter()
        ensure_exported(args.model_dir, onnx_dir)
        print(f"ONNX export ready in {onnx_dir} ({time.perf_counter() - started:.0f} s)", flush=True)

    sherpa: dict[str, Any] = {}
    if any(m.startswith("sherpa") for m in methods):
        import sherpa_onnx

        sherpa_dir = args.model_dir.with_name(args.model_dir.name + "-sherpa")
        if not (sherpa_dir / "tokens.txt").is_file():
            started = time.perf_counter()
            export_for_sherpa(args.model_dir, sherpa_dir)
            print(f"sherpa-onnx export ready in {sherpa_dir} ({time.perf_counter() - started:.0f} s)", flush=True)
        for method, graph in (("sherpa-fp32", "model.onnx"), ("sherpa-int8", "model.int8.onnx")):
            if method in methods:
                sherpa[method] = sherpa_onnx.OfflineRecognizer.from_sense_voice(
                    model=str(sherpa_dir / graph), tokens=str(sherpa_dir / "tokens.txt"), num_threads=args.threads,
                    use_itn=True)

    durations = [float(d) for d in args.durations.split(",")]
    clips = {d: make_clip(d) for d in durations}
    options = DecodeOptions(language="auto", itn=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-offline-"))
    funasr_onnx, failed = start_funasr_onnx(args, methods, clips, workdir)
    engines: dict[str, Any] = {}
    for method in methods:
        if method in sherpa or method.startswith("funasr-onnx"):
            continue
        backend = "torch" if method == "funasr-generate" else method
        if backend not in engines:
            model_dir = args.model_dir if backend == "torch" else onnx_dir
            engines[backend] = load_engine(model_dir, backend, threads=args.threads, warm_up=True)

    def sherpa_run(recognizer: Any, clip: np.ndarray) -> object:
        stream = recognizer.create_stream()
        stream.accept_waveform(SAMPLE_RATE, clip.astype(np.float32))
        recognizer.decode_stream(stream)
        return stream.result.text

    def runner(method: str, clip: np.ndarray) -> Callable[[], object]:
        if method in funasr_onnx:
            key = clip_key(next(d for d, c in clips.items() if c is clip))
            return lambda: funasr_onnx[method].decode(key)
        if method in sherpa:
            return lambda: sherpa_run(sherpa[method], clip)
        if method == "funasr-generate":
            return lambda: engines["torch"].funasr_generate(clip, options)
        return lambda: engines[method].transcribe(clip, options)

    # Round-robin over methods inside each repeat, so a burst of load from other processes on a shared
    # machine hits every method alike instead of whichever happened to be running.
    samples: dict[tuple[str, float], list[float]] = {(m, d): [] for m in methods for d in durations}
    running = [m for m in methods if m not in failed]
    for method in running:
        for seconds in durations:
            runner(method, clips[seconds])()  # warm-up (allocator, caches) per shape
    for round_index in range(args.repeats):
        for seconds in durations:
            for method in running:
                run = runner(method, clips[seconds])
                started = time.perf_counter()
                result = run()
                elapsed = time.perf_counter() - started
                if method in funasr_onnx:
                    elapsed = float(result)  # the subprocess's own timing: no pipe round trip
                samples[(method, seconds)].append(elapsed / seconds)
        print(f"  round {round_index + 1}/{args.repeats} done", flush=True)

    for peer in funasr_onnx.values():
        peer.close()
    torch_engine = engines.get("torch")
    if torch_engine is None:
        torch_engine = load_engine(args.model_dir, "torch", threads=args.threads, warm_up=False)
    model = torch_engine.auto_model.model
    parameters = sum(p.numel() for p in model.parameters())
    rate = int8_gemm_rate(args.threads)
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
            cells.append(f"{statistics.median(values):.4f} / {min(values):.4f}" if values else "not run")
        print(f"| {seconds:.0f} s | " + " | ".join(cells) + " |")

    for method, reason in failed.items():
        print(f"{method}: {reason}")
    ours = [m for m in methods if m in OURS]
    peers = [m for m in methods if m in PEERS and m not in failed]
    print()
    print(f"int8 GEMM rate measured here: {rate / 1e9:.0f} GMAC/s ({args.threads} threads, ONNX Runtime MatMul "
          "512x512x2048, best of 20)")
    print("Speed-up = best peer's median RTF / ours (higher is better); floor = MACs of the clip / int8 GEMM rate.")
    print("| clip | GMAC per audio s | floor RTF | best peer | " + " | ".join(f"{m} speed-up" for m in ours)
          + " | best ours / floor |")
    print("|" + "---|" * (len(ours) + 5))
    for seconds in durations:
        median = {m: statistics.median(samples[(m, seconds)]) for m in methods if samples[(m, seconds)]}
        gmac = model_macs(model, seconds) / seconds / 1e9
        floor = gmac * 1e9 / rate
        best_peer = min(peers, key=lambda m: median[m]) if peers else None
        ratios = [f"{median[best_peer] / median[m]:.2f}x" if best_peer else "-" for m in ours]
        best_ours = min((median[m] for m in ours), default=float("nan"))
        print(f"| {seconds:.0f} s | {gmac:.2f} | {floor:.4f} | {best_peer or '-'} | " + " | ".join(ratios)
              + f" | {best_ours / floor:.1f}x |")
    targets = [(peer, goal) for peer, goal in TARGETS.items() if peer in peers]
    if ours and targets:
        print()
        print("Issue 13 targets: our best engine's speed-up over each peer (median RTF ratio; met when ≥ the goal).")
        print("| clip | best ours | " + " | ".join(f"vs {peer} (goal {goal:g}x)" for peer, goal in targets) + " |")
        print("|" + "---|" * (len(targets) + 2))
        for seconds in durations:
            median = {m: statistics.median(samples[(m, seconds)]) for m in methods if samples[(m, seconds)]}
            best = min(ours, key=lambda m: median[m])
            cells = [f"{median[peer] / median[best]:.2f}x {'met' if median[peer] / median[best] >= goal else 'NOT met'}"
                     for peer, goal in targets]
            print(f"| {seconds:.0f} s | {best} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
