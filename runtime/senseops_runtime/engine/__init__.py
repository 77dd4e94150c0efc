"""SenseVoice model backends behind the :class:`~senseops_runtime.engine.base.Engine` protocol.

``load_engine(model_dir, backend, device)`` is the one entry point: ``torch`` (FunASR AutoModel),
``onnx-fp32`` and ``onnx-int8`` (ONNX Runtime, graphs written by ``engine.export``).
"""

from senseops_runtime.engine.base import DecodeOptions, Engine, Transcript
from senseops_runtime.engine.factory import BACKENDS, EngineLoadError, load_engine, normalise_backend

__all__ = ["BACKENDS", "DecodeOptions", "Engine", "EngineLoadError", "Transcript", "load_engine", "normalise_backend"]
