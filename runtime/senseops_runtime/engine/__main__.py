"""CLI: ``python -m senseops_runtime.engine export MODEL_DIR [--out DIR] [--no-int8]``
and ``python -m senseops_runtime.engine transcribe MODEL_DIR WAV [--backend B] [--language L] [--no-itn]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m senseops_runtime.engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write model.onnx and model_int8.onnx for a model directory")
    export.add_argument("model_dir", type=Path)
    export.add_argument("--out", type=Path, help="write a separate ONNX model directory here")
    export.add_argument("--no-int8", action="store_true", help="skip the int8 graph")
    run = sub.add_parser("transcribe", help="transcribe a WAV file (any rate; resampled to 16 kHz)")
    run.add_argument("model_dir", type=Path)
    run.add_argument("wav", type=Path)
    run.add_argument("--backend", default="torch")
    run.add_argument("--device", default="cpu")
    run.add_argument("--language", default="auto")
    run.add_argument("--no-itn", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "export":
        from senseops_runtime.engine.export import export_model_dir

        result = export_model_dir(args.model_dir, args.out, int8=not args.no_int8)
        print(json.dumps({k: str(v) for k, v in result.__dict__.items()}))
        return 0
    import soundfile
    import soxr

    from senseops_runtime.engine import DecodeOptions, load_engine

    samples, rate = soundfile.read(str(args.wav), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != 16_000:
        mono = soxr.resample(mono, rate, 16_000)
    engine = load_engine(args.model_dir, args.backend, args.device, warm_up=False)
    transcript = engine.transcribe(mono, DecodeOptions(language=args.language, itn=not args.no_itn))
    print(json.dumps(transcript.__dict__, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
