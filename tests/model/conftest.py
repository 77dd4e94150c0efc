"""Fixtures: the cached tiny trained model, its ONNX export, and loaded engines (one per backend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testmodel import ensure_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny SenseVoice model (built and trained on first use, then cached)."""
    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_onnx_dir(tiny_model_dir: Path) -> Path:
    """An ONNX model directory exported from the tiny model (cached next to it)."""
    from senseops_runtime.engine.export import ensure_exported, exported_dir

    return ensure_exported(tiny_model_dir, exported_dir(tiny_model_dir))


@pytest.fixture(scope="session")
def engines(tiny_model_dir: Path, tiny_onnx_dir: Path) -> Iterator[dict[str, object]]:
    """torch, onnx-fp32 and onnx-int8 engines on the same weights."""
    from senseops_runtime.engine import load_engine

    yield {
        "torch": load_engine(tiny_model_dir, "torch", threads=1),
        "onnx-fp32": load_engine(tiny_onnx_dir, "onnx-fp32", threads=1),
        "onnx-int8": load_engine(tiny_onnx_dir, "onnx-int8", threads=1),
    }
