"""The sherpa-onnx export: the same weights in the layout sherpa-onnx's SenseVoice recogniser reads, so the
peer benchmark compares engines on one model. sherpa-onnx (PyPI, C++ on ONNX Runtime) really loads it and
must transcribe the known sentences exactly as our engine does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sherpa_onnx

from senseops_runtime.engine import DecodeOptions, load_engine
from senseops_runtime.engine.model_dir import LANGUAGE_QUERY
from senseops_runtime.engine.peer_export import export_for_funasr_onnx, export_for_sherpa, sherpa_metadata, token_lines
from tests.testmodel import KNOWN_SENTENCES


def test_metadata_has_every_key_sherpa_reads() -> None:
    cmvn = np.array([[-1.0, -2.5], [0.5, 0.25]])
    meta = sherpa_metadata(25055, 7, 6, cmvn)
    assert {k: meta[k] for k in ("vocab_size", "lfr_window_size", "lfr_window_shift", "normalize_samples",
                                 "with_itn", "without_itn")} == {
        "vocab_size": "25055", "lfr_window_size": "7", "lfr_window_shift": "6", "normalize_samples": "0",
        "with_itn": "14", "without_itn": "15"}
    assert [meta[f"lang_{x}"] for x in ("auto", "zh", "en", "yue", "ja", "ko")] == \
        [str(LANGUAGE_QUERY[x]) for x in ("auto", "zh", "en", "yue", "ja", "ko")]
    assert meta["neg_mean"] == "-1,-2.5" and meta["inv_stddev"] == "0.5,0.25"
    assert token_lines(["<unk>", "▁a"]) == ["<unk> 0", "▁a 1"]


@pytest.fixture(scope="module")
def sherpa_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_for_sherpa(tiny_model_dir, tmp_path_factory.mktemp("sherpa")).root


@pytest.mark.parametrize("graph", ["model.onnx", "model.int8.onnx"])
def test_sherpa_onnx_transcribes_our_export_like_our_engine(sherpa_dir: Path, tiny_onnx_dir: Path,
                                                           graph: str) -> None:
    recognizer = sherpa_onnx.OfflineRecognizer.from_sense_voice(
        model=str(sherpa_dir / graph), tokens=str(sherpa_dir / "tokens.txt"), num_threads=1, use_itn=True)
    ours = load_engine(tiny_onnx_dir, "onnx-int8" if "int8" in graph else "onnx-fp32", threads=1, warm_up=False)
    differing = []
    for sentence in KNOWN_SENTENCES:
        audio = sentence.synthesize().astype(np.float32)
        stream = recognizer.create_stream()
        stream.accept_waveform(16_000, audio)
        recognizer.decode_stream(stream)
        mine = ours.transcribe(audio, DecodeOptions(language="auto", itn=True)).text
        if stream.result.text != mine:
            differing.append((sentence.text, stream.result.text, mine))
    assert not differing, differing


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def funasr_onnx_python() -> Path:
    """funasr-onnx's own venv (numpy 1.x), built once into the machine cache by the same script the bench uses."""
    done = subprocess.run([str(REPO / "scripts" / "ensure-funasr-onnx-venv.sh")], capture_output=True, text=True,
                          env={**os.environ, "PROJECT_PY": sys.executable}, timeout=900)
    assert done.returncode == 0, f"could not build the funasr-onnx venv:\n{done.stderr[-2000:]}"
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("quantize", [False, True], ids=["fp32", "int8"])
def test_funasr_onnx_transcribes_our_export_like_our_engine(tiny_model_dir: Path, tiny_onnx_dir: Path,
                                                            tmp_path_factory: pytest.TempPathFactory,
                                                            funasr_onnx_python: Path, quantize: bool) -> None:
    """funasr-onnx (its own venv, driven like the benchmark drives it) on the same weights in its layout."""
    from tests.benchmarks.bench_offline_rtf import FunasrOnnxPeer

    root = tmp_path_factory.getbasetemp() / "funasr-onnx"
    if not (root / "model_quant.onnx").is_file():
        export_for_funasr_onnx(tiny_model_dir, root)
    clips = {f"s{i}": s.synthesize().astype(np.float32) for i, s in enumerate(KNOWN_SENTENCES)}
    npz = root / "clips.npz"
    np.savez(npz, **clips)
    ours = load_engine(tiny_onnx_dir, "onnx-int8" if quantize else "onnx-fp32", threads=1, warm_up=False)
    peer = FunasrOnnxPeer(funasr_onnx_python, root, npz, threads=1, quantize=quantize)
    differing = []
    try:
        for name, audio in clips.items():
            assert peer.decode(name) > 0
            mine = ours.transcribe(audio, DecodeOptions(language="auto", itn=True)).raw
            if peer.text != mine:
                differing.append((peer.text, mine))
    finally:
        peer.close()
    assert not differing, differing
