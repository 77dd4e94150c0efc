"""The export stage: the fine-tuned model directory plus ONNX fp32 and int8 files, in the runtime's format.

The ONNX conversion is the runtime engine's own export function, so what the trainer ships is exactly
what the runtime's ONNX backends load.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from senseops_trainer.context import RunContext, StageFailed, StageOutcome


def _export_onnx(model_dir: Path) -> list[str]:
    """Write the ONNX files into ``model_dir`` with the runtime's exporter; return their names."""
    from senseops_runtime.engine.export import export_model_dir  # the runtime owns the ONNX format

    before = {p.name for p in model_dir.iterdir()}
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # the quantizer logs one INFO line per tensor
    try:
        export_model_dir(model_dir, int8=True)
    finally:
        root.setLevel(level)
    return sorted({p.name for p in model_dir.iterdir()} - before)


def export(ctx: RunContext, model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Copy the fine-tuned model into the package directory and add the ONNX exports."""
    inputs = {"train": ctx.manifest.outputs_digest("train"), "onnx": ctx.cfg.output.export_onnx}

    def body() -> StageOutcome:
        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(model_dir, staging)
        added: list[str] = []
        if ctx.cfg.output.export_onnx:
            try:
                added = _export_onnx(staging)
            except Exception as exc:  # the exporter's own errors become one clear stage failure
                raise StageFailed("export", f"ONNX export failed: {exc}") from exc
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
        relative = str(out_dir.relative_to(ctx.workdir))
        return StageOutcome([relative], {"files": sorted(p.name for p in out_dir.iterdir()), "onnx": added})

    return ctx.run_stage("export", inputs, body)
