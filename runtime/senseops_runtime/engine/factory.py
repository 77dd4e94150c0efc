"""Choosing a backend: ``load_engine(model_dir, backend, device)``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from senseops_runtime.engine.base import Engine

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx-fp32", "onnx-int8")
_ALIASES = {"onnx": "onnx-fp32", "pytorch": "torch", "int8": "onnx-int8"}


class EngineLoadError(RuntimeError):
    """The model could not be loaded; the message says why (shown by /readyz and the logs)."""


def normalise_backend(backend: str) -> str:
    """Canonical backend name; raises ValueError listing the valid ones."""
    name = _ALIASES.get(backend.strip().lower(), backend.strip().lower())
    if name not in BACKENDS:
        raise ValueError(f"unknown model backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    return name


def load_engine(
    model_dir: Path | str,
    backend: str = "torch",
    device: str = "cpu",
    *,
    threads: int | None = None,
    name: str | None = None,
    version: str = "local",
    warm_up: bool = True,
    spin_wait: bool = True,
) -> Engine:
    """Load the model in ``model_dir`` with the chosen backend (and warm it up).

    ``backend``: ``torch`` (FunASR AutoModel), ``onnx-fp32`` or ``onnx-int8`` (ONNX Runtime; the
    directory must contain the exported graphs). ``spin_wait=False`` stops ONNX Runtime's threads busy-waiting
    between runs (see :class:`OnnxEngine`; torch ignores it). Any failure is raised as :class:`EngineLoadError`.
    """
    kind = normalise_backend(backend)
    started = time.monotonic()
    engine: Engine
    try:
        if kind == "torch":
            from senseops_runtime.engine.torch_backend import TorchEngine

            engine = TorchEngine(Path(model_dir), device=device, threads=threads, name=name, version=version)
        else:
            from senseops_runtime.engine.onnx_backend import OnnxEngine

            engine = OnnxEngine(
                Path(model_dir), int8=kind == "onnx-int8", device=device, threads=threads,
                name=name, version=version, spin_wait=spin_wait,
            )
        if warm_up:
            engine.warm_up()
    except EngineLoadError:
        raise
    except Exception as exc:  # any loader failure becomes one error type with the reason
        raise EngineLoadError(f"could not load {kind} model from {model_dir}: {exc}") from exc
    log.info("loaded %s model %s in %.1f s", kind, model_dir, time.monotonic() - started)
    return engine
