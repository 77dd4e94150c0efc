"""Stage order and the ``run`` command: chains every stage, stops at the first failure or failed gate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from senseops_common.storage import StorageError
from senseops_trainer import data_stages
from senseops_trainer.context import RunContext, StageFailed
from senseops_trainer.package import PACKAGE_DIR, fetch_model_dir, is_store_uri
from senseops_trainer.state_sync import WorkdirMirror

STAGES: tuple[str, ...] = ("collect", "filter", "normalize", "split", "train", "evaluate", "export", "package")
BASE_MODEL_DIR = "base_model"


def base_model_dir(ctx: RunContext) -> Path:
    """The base model as a local directory (downloaded and verified once when it is a store URI)."""
    base = ctx.cfg.base_model
    if not base:
        raise StageFailed("config", "base_model is empty; give a model directory or a models/… URI")
    if is_store_uri(base):
        return fetch_model_dir(base, ctx.workdir / BASE_MODEL_DIR)
    path = Path(base)
    if not (path / "config.yaml").is_file() or not (path / "model.pt").is_file():
        raise StageFailed("config", f"base_model {base} is not a model directory (needs config.yaml and model.pt)")
    return path.resolve()


def _require(ctx: RunContext, *stages: str) -> None:
    for stage in stages:
        if stage not in ctx.manifest.stages:
            raise StageFailed(stage, f"stage {stage} has not finished in {ctx.workdir}; run it (or `run`) first")


def _stage_functions(ctx: RunContext) -> dict[str, Callable[[], dict[str, Any]]]:
    from senseops_trainer import evaluate, export, package, train

    def do_filter() -> dict[str, Any]:
        _require(ctx, "collect")
        redecode = None
        if ctx.cfg.filters.stability_check:
            redecode = evaluate.file_decoder(base_model_dir(ctx), ctx.cfg.train.device)
        return data_stages.filter_stage(ctx, redecode)

    def do_normalize() -> dict[str, Any]:
        _require(ctx, "filter")
        return data_stages.normalize(ctx)

    def do_split() -> dict[str, Any]:
        _require(ctx, "normalize")
        return data_stages.split(ctx)

    def do_train() -> dict[str, Any]:
        _require(ctx, "split")
        return train.train(ctx, base_model_dir(ctx))

    def do_evaluate() -> dict[str, Any]:
        _require(ctx, "train")
        return evaluate.evaluate(ctx, base_model_dir(ctx), ctx.workdir / train.MODEL_DIR)

    def do_export() -> dict[str, Any]:
        _require(ctx, "evaluate")
        return export.export(ctx, ctx.workdir / train.MODEL_DIR, ctx.workdir / PACKAGE_DIR)

    def do_package() -> dict[str, Any]:
        _require(ctx, "export")
        return package.package(ctx, ctx.workdir / PACKAGE_DIR, evaluate.report_files(ctx))

    return {
        "collect": lambda: data_stages.collect(ctx),
        "filter": do_filter,
        "normalize": do_normalize,
        "split": do_split,
        "train": do_train,
        "evaluate": do_evaluate,
        "export": do_export,
        "package": do_package,
    }


def run_stage(ctx: RunContext, name: str) -> dict[str, Any]:
    """Run one stage by name (its upstream stages must have finished)."""
    functions = _stage_functions(ctx)
    if name not in functions:
        raise StageFailed(name, f"unknown stage; choose one of {', '.join(STAGES)}")
    return functions[name]()


def run_all(ctx: RunContext, until: str | None = None,
            mirror: WorkdirMirror | None = None) -> dict[str, dict[str, Any]]:
    """Run every stage in order (finished ones are skipped by the manifest); stop after ``until``.

    With a ``mirror`` the work directory is pushed to the store after each stage (finished or failed) and
    every ``state_interval_s`` while training, so a retried pod resumes instead of starting again.
    """
    from senseops_trainer.train import topology_of

    coordinator = topology_of(ctx.cfg.train, ctx.cfg.job_name).coordinator
    results: dict[str, dict[str, Any]] = {}
    for name in STAGES:
        if mirror is not None and name == "train":
            mirror.start(ctx.cfg.state_interval_s)
        try:
            results[name] = run_stage(ctx, name)
        finally:
            if mirror is not None:
                mirror.stop()
                try:
                    pushed = mirror.push(settle_s=0)
                except StorageError as exc:  # the store is down: the mirror lags, the run goes on
                    ctx.progress.emit("state", "push_failed", message=str(exc))
                    pushed = []
                if pushed:
                    ctx.progress.emit("state", "pushed", files=len(pushed), after=name)
        if name == until:
            break
        if name == "train" and not coordinator:
            break  # distributed.py: the pod of node rank 0 evaluates, exports and packages
    return results
