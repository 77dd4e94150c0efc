"""The funasr-onnx peer of the offline benchmark, run in its own virtualenv (funasr-onnx pins numpy<=1.26.4).

    VENV_PY tests/benchmarks/funasr_onnx_peer.py MODEL_DIR CLIPS.npz --threads 2 [--quantize]

Loads funasr-onnx's ``SenseVoiceSmall`` on MODEL_DIR (the layout ``peer_export.export_for_funasr_onnx``
writes), prints one JSON line ``{"ready": true}``, then for each line on stdin naming a clip in CLIPS.npz
decodes it and prints ``{"seconds": decode time, "text": ...}``. The benchmark drives it round-robin with
its in-process methods, so every method sees the same load. Imports nothing from this repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("clips")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quantize", action="store_true")
    args = parser.parse_args()
    from funasr_onnx import SenseVoiceSmall

    model = SenseVoiceSmall(args.model_dir, quantize=args.quantize, intra_op_num_threads=args.threads)
    clips = dict(np.load(args.clips))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        clip = clips[line.strip()]
        started = time.perf_counter()
        text = model(clip, language="auto", textnorm="withitn")
        elapsed = time.perf_counter() - started
        print(json.dumps({"seconds": elapsed, "text": text[0] if text else ""}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
