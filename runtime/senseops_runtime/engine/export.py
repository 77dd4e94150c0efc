"""Export a SenseVoice model directory to ONNX (fp32 and dynamic int8) for the ONNX backend.

The trainer's ``export`` stage and the runtime share this function, so the runtime always loads the
format the trainer writes. The torch weights are loaded through FunASR's AutoModel (the same path the
torch backend uses); the exported graph is :class:`~senseops_runtime.engine.graph.SenseVoiceBestPath`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from senseops_common.cachedir import locked
from senseops_runtime.engine.model_dir import ONNX_FP32, ONNX_INT8, ModelFiles

# Files an ONNX-only model directory needs besides the .onnx graphs.
_SUPPORT_FILES = ("config.yaml", "configuration.json", "am.mvn")


@dataclass(frozen=True)
class ExportResult:
    """Where the exported graphs are."""

    model_dir: Path
    fp32: Path
    int8: Path | None


def export_model_dir(
    model_dir: Path, out_dir: Path | None = None, int8: bool = True, per_channel: bool = True
) -> ExportResult:
    """Write ``model.onnx`` (and ``model_int8.onnx``) for the model in ``model_dir``.

    With ``out_dir`` the result is a separate, complete ONNX model directory (config, CMVN and
    tokenizer are copied beside the graphs); otherwise the graphs are added to ``model_dir``.
    """
    from senseops_runtime.engine.graph import export_onnx, quantize_int8
    from senseops_runtime.engine.torch_backend import TorchEngine

    files = ModelFiles.open(Path(model_dir))
    target = Path(out_dir) if out_dir else files.root
    target.mkdir(parents=True, exist_ok=True)
    if target.resolve() != files.root.resolve():
        for name in (*_SUPPORT_FILES, files.tokenizer.name):
            if (files.root / name).is_file():
                shutil.copy2(files.root / name, target / name)
    engine = TorchEngine(files.root, device="cpu")
    fp32 = export_onnx(engine.auto_model.model, target / ONNX_FP32)
    # Weight MatMuls only. Quantising the attention scores q·kᵀ as well (attention="scores") kept the tiny model's
    # transcripts but did not pay on the full-size model: +3 to +10 % RTF on 5/10 s clips in interleaved A/Bs
    # (`make bench-offline-ab`); the probabilities × values product in int8 ("all") changed transcripts.
    quantized = quantize_int8(fp32, target / ONNX_INT8, per_channel=per_channel, attention="none") if int8 else None
    return ExportResult(model_dir=target, fp32=fp32, int8=quantized)


_EXPORT_MARKER = ".senseops-exported"
# Bump when SenseVoiceBestPath's inputs/outputs or the int8 recipe change. v2: the attention scores were int8 too;
# v3: back to weight MatMuls only (v2 was slower, see export_model_dir).
EXPORT_FORMAT = "best-path-v3"


def exported_dir(model_dir: Path) -> Path:
    """Where tests and benchmarks cache the ONNX export of ``model_dir``: beside it, named by the format, so
    checkouts of different export formats sharing one cache do not overwrite each other's graphs."""
    model_dir = Path(model_dir)
    return model_dir.with_name(f"{model_dir.name}-onnx-{EXPORT_FORMAT}")


def ensure_exported(model_dir: Path, out_dir: Path) -> Path:
    """Export ``model_dir`` to the ONNX model directory ``out_dir`` unless a finished export is there.

    Used by tests and the demo to reuse one export of the cached tiny model; serialised by a lock.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with locked(out_dir.with_name(out_dir.name + ".lock")):
        marker = out_dir / _EXPORT_MARKER
        wanted = f"{EXPORT_FORMAT} {Path(model_dir).resolve()}\n"
        if not marker.is_file() or marker.read_text() != wanted:
            export_model_dir(model_dir, out_dir, int8=True)
            marker.write_text(wanted)
    return out_dir
