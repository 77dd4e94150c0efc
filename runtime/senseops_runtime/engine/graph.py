"""The inference graph shared by the torch backend and the ONNX export.

FunASR's ``SenseVoiceSmall.inference`` prepends four query embeddings (language, event, emotion, ITN
style) to the features, runs the encoder and takes the CTC log-softmax. This module does the same with
the *same* FunASR modules and weights, then keeps only each frame's best token and its log-probability,
so the ONNX graph returns a few KB instead of a (frames × 25055) matrix.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

INPUT_NAMES = ["speech", "speech_lengths", "language", "textnorm"]
OUTPUT_NAMES = ["best_log_probs", "best_ids", "frame_lengths"]
OPSET = 17


class SenseVoiceBestPath(torch.nn.Module):
    """(features, lengths, language row, ITN row) → per-frame best token, its log-prob, frame counts."""

    def __init__(self, sensevoice: Any) -> None:
        super().__init__()
        self.sensevoice = sensevoice

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        language: torch.Tensor,
        textnorm: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs, lengths = ctc_log_probs(self.sensevoice, speech, speech_lengths, language, textnorm)
        best_log_probs, best_ids = log_probs.max(dim=-1)
        return best_log_probs, best_ids, lengths.int()


def ctc_log_probs(
    model: Any, speech: torch.Tensor, speech_lengths: torch.Tensor, language: torch.Tensor, textnorm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The four query embeddings + features through the encoder → CTC log-probs (batch, 4 + frames, vocab)."""
    encoded, lengths = encode(model, speech, speech_lengths, language, textnorm)
    return model.ctc.log_softmax(encoded), lengths


def encode(
    model: Any, speech: torch.Tensor, speech_lengths: torch.Tensor, language: torch.Tensor, textnorm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The four query embeddings + features through the encoder → (encoder output, output lengths)."""
    batch = speech.shape[0]
    language_query = model.embed(language.long()).unsqueeze(1)
    event_emotion_query = model.embed(torch.tensor([1, 2], device=speech.device)).unsqueeze(0)
    event_emotion_query = event_emotion_query.expand(batch, -1, -1)
    textnorm_query = model.embed(textnorm.long()).unsqueeze(1)
    inputs = torch.cat((language_query, event_emotion_query, textnorm_query, speech), dim=1)
    encoded, lengths = model.encoder(inputs, speech_lengths.int() + 4)
    if isinstance(encoded, tuple):
        encoded = encoded[0]
    return encoded, lengths


def export_onnx(sensevoice: Any, out_path: Path) -> Path:
    """Export the best-path graph of a loaded FunASR SenseVoiceSmall to ONNX (fp32, dynamic shapes)."""
    out_axes = {"best_log_probs": {0: "batch", 1: "out_frames"}, "best_ids": {0: "batch", 1: "out_frames"},
                "frame_lengths": {0: "batch"}}
    return export_graph(SenseVoiceBestPath(sensevoice).eval(), out_path, OUTPUT_NAMES, out_axes)


def export_graph(graph: torch.nn.Module, out_path: Path, output_names: list[str],
                 output_axes: dict[str, dict[int, str]]) -> Path:
    """Export a graph taking SenseVoice's four inputs (``INPUT_NAMES``, in that order) with dynamic shapes."""
    dummy = (
        torch.randn(2, 30, 560),
        torch.tensor([30, 17], dtype=torch.int32),
        torch.tensor([0, 3], dtype=torch.int32),
        torch.tensor([15, 14], dtype=torch.int32),
    )
    dynamic_axes = {
        "speech": {0: "batch", 1: "frames"},
        "speech_lengths": {0: "batch"},
        "language": {0: "batch"},
        "textnorm": {0: "batch"},
        **output_axes,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is chosen on purpose (dynamo=False below); its deprecation notice is not news.
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        # The tracer notes that torch.tensor([1, 2]) (the event/emotion query ids) becomes a constant: it is one.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            dummy,
            str(out_path),
            input_names=INPUT_NAMES,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter handles FunASR's data-dependent masks without onnxscript
        )
    return out_path


ATTENTION_INT8 = ("none", "scores", "all")  # which attention products quantize_int8 makes int8


def attention_products(fp32_path: Path) -> tuple[list[str], list[str]]:
    """Names of the activation × activation MatMuls in an exported graph: (scores q·kᵀ, weighted sums p·v).

    A weighted sum is the MatMul whose left input is the attention probabilities (a Softmax, or the Where
    that masks it); every other MatMul without a constant input is a score product.
    """
    import onnx

    model = onnx.load(str(fp32_path), load_external_data=False)
    constants = {init.name for init in model.graph.initializer}
    producer = {output: node.op_type for node in model.graph.node for output in node.output}
    scores: list[str] = []
    sums: list[str] = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or any(name in constants for name in node.input):
            continue
        (sums if producer.get(node.input[0]) in ("Softmax", "Where") else scores).append(node.name)
    return scores, sums


def quantize_int8(fp32_path: Path, int8_path: Path, per_channel: bool = True, attention: str = "none") -> Path:
    """Dynamic int8 quantisation of the MatMuls (activations quantised per call).

    Every weight MatMul is quantised (signed int8 weights, per output channel). ``attention`` says which
    activation × activation products are quantised too, both inputs per call: ``"none"`` (the usual recipe
    of FunASR's and sherpa-onnx's own export scripts, what the peer exports use), ``"scores"`` (q·kᵀ) or
    ``"all"`` (also the probabilities × values, which a per-tensor uint8 scale of the probabilities blurs).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if attention not in ATTENTION_INT8:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_INT8)}, got {attention!r}")
    scores, sums = attention_products(fp32_path)
    excluded = {"none": scores + sums, "scores": sums, "all": []}[attention]
    with _quiet_quantizer():
        # Signed int8 weights with uint8 activations: the u8s8 path that VNNI/AMX accelerate.
        quantize_dynamic(
            model_input=str(fp32_path),
            model_output=str(int8_path),
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            extra_options={"MatMulConstBOnly": False},
        )
    return int8_path


def feeds(features: Iterable[Any], language: int = 0, textnorm: int = 14) -> Iterator[dict[str, Any]]:
    """One single-clip session input per feature matrix (frames, 560): calibration data for static int8."""
    import numpy as np

    for matrix in features:
        speech = np.asarray(matrix, dtype=np.float32)[None]
        yield {"speech": speech, "speech_lengths": np.array([speech.shape[1]], dtype=np.int32),
               "language": np.array([language], dtype=np.int32), "textnorm": np.array([textnorm], dtype=np.int32)}


def quantize_int8_static(fp32_path: Path, int8_path: Path, calibration: Iterable[dict[str, Any]],
                         per_channel: bool = True) -> Path:
    """Static (QDQ) int8 of the weight MatMuls: activation scales fixed from ``calibration`` (min/max).

    Unlike :func:`quantize_int8`, no scale depends on the call's input, so a clip decoded inside a padded
    batch gives exactly the log-probabilities it gives alone. Measured (engine README) at 15-30 % slower than
    the dynamic graph on one clip, so it is an option, not the runtime's recipe. Attention products stay
    fp32, as in the runtime's graph.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    scores, sums = attention_products(fp32_path)
    with _quiet_quantizer():
        quantize_static(
            model_input=str(fp32_path),
            model_output=str(int8_path),
            calibration_data_reader=Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            reduce_range=False,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=scores + sums,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return int8_path


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs an INFO line per tensor and a pre-processing hint: errors only meanwhile."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(previous, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(previous)
