"""Greedy CTC decoding and confidence: table cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from senseops_runtime.engine.ctc import BLANK_ID, greedy_decode

B = BLANK_ID
LOG_09 = math.log(0.9)


def _decode(ids: list[int], probs: list[float], length: int | None = None):  # type: ignore[no-untyped-def]
    return greedy_decode(np.array(ids), np.log(np.array(probs)), len(ids) if length is None else length)


CASES = [
    # name, ids, probs, real length (None: all), expected tokens
    ("tags then words", [10, 11, 12, 13, 5, 5, B, 6], [1, 1, 1, 1, 0.9, 0.9, 1, 0.9], None, (10, 11, 12, 13, 5, 6)),
    ("repeat needs a blank", [10, 11, 12, 13, 5, B, 5], [1] * 7, None, (10, 11, 12, 13, 5, 5)),
    ("repeat without blank collapses", [10, 11, 12, 13, 5, 5, 5], [1] * 7, None, (10, 11, 12, 13, 5)),
    ("blanks only", [B] * 8, [0.99] * 8, None, ()),
    ("batch padding ignored", [10, 11, 12, 13, 7, 9, 9, 9], [1] * 8, 5, (10, 11, 12, 13, 7)),
]


@pytest.mark.parametrize(
    ("ids", "probs", "length", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_tokens(ids: list[int], probs: list[float], length: int | None, expected: tuple[int, ...]) -> None:
    assert _decode(ids, probs, length).token_ids == expected


def test_confidence_is_geometric_mean_of_word_token_peaks() -> None:
    # word 5 spans two frames (0.5, 0.8 → peak 0.8); word 6 has 0.2; tags (first four frames) don't count
    result = _decode([10, 11, 12, 13, 5, 5, B, 6], [0.1, 0.1, 0.1, 0.1, 0.5, 0.8, 0.99, 0.2])
    assert result.confidence == pytest.approx(math.sqrt(0.8 * 0.2))


def test_empty_transcript_confidence_is_low_when_model_is_sure_of_silence() -> None:
    sure = _decode([10, 11, 12, 13] + [B] * 20, [1.0] * 4 + [0.999] * 20)
    hesitant = _decode([10, 11, 12, 13] + [B] * 20, [1.0] * 4 + [0.4] * 20)
    assert 0 < sure.confidence < 0.01
    assert sure.confidence < hesitant.confidence <= 1.0


def test_confidence_bounds() -> None:
    assert _decode([10, 11, 12, 13, 5], [1, 1, 1, 1, 1.0]).confidence == 1.0
    assert _decode([10, 11], [1, 1]).confidence > 0
