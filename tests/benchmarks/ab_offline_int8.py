"""Interleaved A/B of issue 13's offline changes, in one process, on the full-size model's ONNX int8 session.

    .venv/bin/python tests/benchmarks/ab_offline_int8.py [--model-dir DIR] [--rounds 7] [--threads 2]

Arms (same weights, same session options as ``OnnxEngine``), run old/new/old/new… per clip, medians shown:

- ``before``: int8 of the weight MatMuls only (the runtime's ``model_int8.onnx``), kaldi-native-fbank features;
- ``+numpy fbank``: the same graph, features from the runtime's frontend (vectorised NumPy fbank, one BLAS thread);
- ``+scores int8``: also the attention scores q·kᵀ int8 (``quantize_int8(attention="scores")``; measured slower,
  so not the runtime's recipe);
- ``static QDQ``: the weight MatMuls int8 with fixed activation scales (``quantize_int8_static``, calibrated on the
  espeak sentences); a clip batched with others decodes exactly as alone. A last table times 8 clips of 2 s
  decoded one by one and as one padded batch, on the runtime's graph and on the static one.

Each cell is decode seconds per audio second: wall time (what a caller waits) and, after the slash, this
process's CPU time divided by the threads (less disturbed by other processes on a shared machine; ORT's
spinning threads count too). The scores and static graphs are quantised once into the export directory's
siblings ``<export>-scores-int8.onnx`` and ``<export>-static-int8.onnx``. Arm order rotates each round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "runtime"), str(ROOT)]

from senseops_runtime.engine.export import ensure_exported, exported_dir  # noqa: E402
from senseops_runtime.engine.features import pad_batch  # noqa: E402
from senseops_runtime.engine.graph import feeds, quantize_int8, quantize_int8_static  # noqa: E402
from senseops_runtime.engine.model_dir import ONNX_FP32, ONNX_INT8, ModelFiles  # noqa: E402


def session(path: Path, threads: int) -> Any:
    """An ONNX Runtime session with OnnxEngine's options."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> int:
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=cache / "models" / "fullsize-random-seed0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--durations", default="5,10,30")
    args = parser.parse_args()

    onnx_dir = ensure_exported(args.model_dir, exported_dir(args.model_dir))
    scores_graph = onnx_dir.with_name(onnx_dir.name + "-scores-int8.onnx")
    if not scores_graph.is_file():
        print(f"quantising the scores int8 graph into {scores_graph} …", flush=True)
        partial = scores_graph.with_name(scores_graph.name + ".partial")
        quantize_int8(onnx_dir / ONNX_FP32, partial, attention="scores")
        partial.rename(scores_graph)
    frontend = ModelFiles.open(onnx_dir).frontend()
    static_graph = onnx_dir.with_name(onnx_dir.name + "-static-int8.onnx")
    if not static_graph.is_file():
        from tests.testmodel import KNOWN_SENTENCES

        print(f"calibrating and quantising the static int8 graph into {static_graph} …", flush=True)
        partial = static_graph.with_name(static_graph.name + ".partial")
        quantize_int8_static(onnx_dir / ONNX_FP32, partial, feeds(frontend(s.synthesize()) for s in KNOWN_SENTENCES))
        partial.rename(static_graph)
    cmvn = frontend.cmvn
    assert cmvn is not None

    def kaldi_features(audio: np.ndarray) -> np.ndarray:
        return np.asarray((frontend.lfr(frontend.fbank_kaldi(audio)) + cmvn[0]) * cmvn[1], dtype=np.float32)

    old_graph, new_graph = session(onnx_dir / ONNX_INT8, args.threads), session(scores_graph, args.threads)
    arms: dict[str, tuple[Any, Callable[[np.ndarray], np.ndarray]]] = {
        "before": (old_graph, kaldi_features),
        "+numpy fbank": (old_graph, frontend),
        "+scores int8": (new_graph, frontend),
        "static QDQ": (session(static_graph, args.threads), frontend),
    }
    rng = np.random.default_rng(0)
    durations = [float(d) for d in args.durations.split(",")]
    clips = {d: (rng.standard_normal(int(16_000 * d)) * 0.1).astype(np.float32) for d in durations}

    def decode(arm: str, audio: np.ndarray) -> None:
        graph, features = arms[arm]
        speech = features(audio)[None]
        graph.run(None, {"speech": speech, "speech_lengths": np.array([speech.shape[1]], dtype=np.int32),
                         "language": np.array([0], dtype=np.int32), "textnorm": np.array([14], dtype=np.int32)})

    for arm in arms:
        for audio in clips.values():
            decode(arm, audio)  # warm-up per shape
    wall: dict[tuple[str, float], list[float]] = {(a, d): [] for a in arms for d in durations}
    cpu: dict[tuple[str, float], list[float]] = {(a, d): [] for a in arms for d in durations}
    names = list(arms)
    for round_no in range(args.rounds):
        for seconds, audio in clips.items():
            # Rotate which arm goes first each round, so no arm always runs right after a different clip size.
            for arm in names[round_no % len(names):] + names[:round_no % len(names)]:
                started, started_cpu = time.perf_counter(), time.process_time()
                decode(arm, audio)
                wall[(arm, seconds)].append((time.perf_counter() - started) / seconds)
                cpu[(arm, seconds)].append((time.process_time() - started_cpu) / seconds / args.threads)
    load = os.getloadavg()
    print(f"\nA/B, {args.rounds} interleaved rounds, {args.threads} threads; load average at end "
          f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}. Cells: median RTF wall / CPU÷threads (change vs before).")
    print("| arm | " + " | ".join(f"{d:g} s" for d in durations) + " |")
    print("|" + "---|" * (len(durations) + 1))
    for arm in arms:
        cells = []
        for seconds in durations:
            w, c = statistics.median(wall[(arm, seconds)]), statistics.median(cpu[(arm, seconds)])
            base = statistics.median(wall[("before", seconds)])
            cells.append(f"{w:.4f} / {c:.4f} ({(w / base - 1) * 100:+.0f} %)")
        print(f"| {arm} | " + " | ".join(cells) + " |")
    batching_table(arms, frontend, args.rounds)
    return 0


def batching_table(arms: dict[str, tuple[Any, Any]], frontend: Any, rounds: int) -> None:
    """8 clips of 2 s: one by one vs one padded batch, and whether the batch changes any clip's log-probs."""
    rng = np.random.default_rng(1)
    features = [frontend((rng.standard_normal(32_000 + 1_600 * i) * 0.1).astype(np.float32)) for i in range(8)]
    speech, lengths = pad_batch(features)

    def run(graph: Any, speech: np.ndarray, lengths: np.ndarray) -> Any:
        count = len(lengths)
        return graph.run(None, {"speech": speech, "speech_lengths": lengths, "language": np.zeros(count, np.int32),
                                "textnorm": np.full(count, 14, np.int32)})

    print("\n8 clips of 2.0-3.1 s, median of rounds: | graph | one by one | one batch | batch log-probs = alone |")
    for arm in ("+numpy fbank", "static QDQ"):
        graph = arms[arm][0]
        lone, batched = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            alone = [run(graph, f[None], lengths[i:i + 1])[0][0] for i, f in enumerate(features)]
            lone.append(time.perf_counter() - started)
            started = time.perf_counter()
            together = run(graph, speech, lengths)[0]
            batched.append(time.perf_counter() - started)
        same = all(np.array_equal(a, together[i, :a.shape[0]]) for i, a in enumerate(alone))
        print(f"| {'runtime graph' if arm == '+numpy fbank' else arm} | {statistics.median(lone) * 1000:.0f} ms | "
              f"{statistics.median(batched) * 1000:.0f} ms | {same} |")


if __name__ == "__main__":
    sys.exit(main())
