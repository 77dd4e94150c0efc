"""``python -m senseops_trainer`` — the trainer's command line.

    python -m senseops_trainer run --config job.yaml --workdir /work/job     # every stage, resumable
    python -m senseops_trainer train --config job.yaml --workdir /work/job   # one stage
    python -m senseops_trainer synth --store file:///tmp/rec                 # synthetic recordings
    python -m senseops_trainer build-image --model-uri … --sha256 … --image … # model image (crane)

Settings come from ``--config`` (YAML/JSON, see :mod:`senseops_trainer.config`) and ``--set key=value``
(dotted, values parsed as YAML: ``--set train.lr=3e-5 --set dataset.anchor_ids=[a1,a2]``). Exit codes:
0 success, 2 a stage failed, 3 the evaluation gate failed (the reason is printed as the last JSON line), 64 bad
usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from senseops_common.storage import StorageError
from senseops_trainer.config import TrainerConfig, load_config
from senseops_trainer.context import GateFailed, RunContext, StageFailed
from senseops_trainer.distributed import NODE_RANK_ENV
from senseops_trainer.image import add_build_image_parser, run_build_image
from senseops_trainer.pipeline import STAGES, run_all, run_stage
from senseops_trainer.progress import NullStatusSink, ProgressLog, status_sink_from_env
from senseops_trainer.state_sync import WorkdirMirror

EXIT_FAILED = 2
EXIT_GATE_FAILED = 3
EXIT_USAGE = 64


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per stage, plus run and synth)."""
    parser = argparse.ArgumentParser(prog="senseops_trainer", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in (*STAGES, "run"):
        cmd = sub.add_parser(name, help="run every stage" if name == "run" else f"run the {name} stage")
        cmd.add_argument("--config", type=Path, help="YAML/JSON settings file")
        cmd.add_argument("--workdir", type=Path, required=True, help="local work directory (resumable state)")
        cmd.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
        if name == "run":
            cmd.add_argument("--until", choices=STAGES, help="stop after this stage")
    synth = sub.add_parser("synth", help="write the synthetic domain recordings into a store")
    synth.add_argument("--store", required=True, help="store URI (s3://…, cos://…, file://…)")
    synth.add_argument("--seed", type=int, default=7)
    add_build_image_parser(sub)
    return parser


def _restore_state(cfg: TrainerConfig, workdir: Path, progress: ProgressLog) -> WorkdirMirror | None:
    """With ``state_uri`` set: restore the work directory an earlier (killed) pod mirrored, then keep mirroring."""
    if not cfg.state_uri:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    mirror = WorkdirMirror(cfg.state_uri, workdir, settle_s=cfg.state_settle_s)
    restored = mirror.restore()
    progress.emit("state", "restored", files=len(restored), source=cfg.state_uri,
                      message=f"resuming from {len(restored)} files of an earlier attempt" if restored else
                      "no earlier attempt to resume")
    return mirror


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = ProgressLog(sink=status_sink_from_env())
    if args.command == "synth":
        from senseops_common.storage import open_store
        from senseops_trainer.synthetic import corpus_summary, write_corpus

        print(corpus_summary(write_corpus(open_store(args.store), seed=args.seed)))
        return 0
    if args.command == "build-image":
        return run_build_image(args, progress)
    try:
        cfg = load_config(args.config, _overrides(args.sets))
    except (ValueError, OSError, yaml.YAMLError) as exc:
        progress.emit("config", "failed", message=str(exc))
        return EXIT_USAGE
    coordinator = cfg.train.nodes <= 1 or os.environ.get(NODE_RANK_ENV, "0") == "0"
    if not coordinator:
        progress.sink = NullStatusSink()  # one writer of status.progress: the pod of node rank 0
    mirror = None
    try:
        if args.command == "run":
            # Before the run context reads the manifest: it may come from an earlier (killed) pod. One pod
            # mirrors (node rank 0: it holds FunASR's checkpoints); the other ranks redo the data stages.
            mirror = _restore_state(cfg, args.workdir, progress) if coordinator else None
        ctx = RunContext(cfg=cfg, workdir=args.workdir, progress=progress)
        if args.command == "run":
            results = run_all(ctx, until=args.until, mirror=mirror)
            progress.emit("run", "done", force_status=True, message="all stages finished",
                          stages=list(results))
            if mirror is not None and args.until is None:
                mirror.clear()  # finished: nothing left to resume
        else:
            run_stage(ctx, args.command)
    except StageFailed as exc:
        progress.emit(exc.stage, "failed", force_status=True, message=str(exc))
        if isinstance(exc, GateFailed):
            if mirror is not None:
                mirror.clear()  # a final answer: a retry would only reach it again
            return EXIT_GATE_FAILED
        return EXIT_FAILED
    except StorageError as exc:  # our storage errors are sentences already (missing key, no access, …)
        progress.emit("storage", "failed", force_status=True, message=str(exc))
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
