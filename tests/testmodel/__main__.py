"""CLI: ``python -m tests.testmodel build [--out DIR]`` / ``fullsize --out DIR``."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from tests.testmodel.build import build_fullsize_random, ensure_tiny_model


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the model directory."""
    parser = argparse.ArgumentParser(prog="python -m tests.testmodel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse the cached) tiny trained test model")
    build.add_argument("--out", type=Path, help="also copy the model directory here")
    full = sub.add_parser("fullsize", help="write a full-size random-init SenseVoice-Small (benchmarks)")
    full.add_argument("--out", type=Path, required=True)
    full.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "build":
        model_dir = ensure_tiny_model()
        if args.out:
            if args.out.exists():
                shutil.rmtree(args.out)
            shutil.copytree(model_dir, args.out)
            model_dir = args.out
    else:
        model_dir = build_fullsize_random(args.out, seed=args.seed)
    print(model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
