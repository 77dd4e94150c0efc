"""Greedy CTC decoding and the per-segment confidence, from per-frame best tokens (pure functions).

Both backends reduce the network's CTC posteriors inside the graph to, per frame, the best token id and
its log-probability (a 25055-wide posterior matrix per frame is far more than the decoder needs). The
first four output frames are SenseVoice's query positions: language, event, emotion, ITN style.

Confidence: the geometric mean of the posterior of every emitted *word* token (the peak posterior of
its run of frames). A transcript with no words is worthless as a pseudo-label, so it scores the mean
probability mass *not* on the best token over the speech frames: near 0 when the model is sure nothing
was said (silence, noise it rejects), higher only when it hesitated. Always in (0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLANK_ID = 0
QUERY_FRAMES = 4  # language, event, emotion, ITN style
_MIN_LOG_PROB = -50.0  # keeps exp() > 0 so confidence stays in (0, 1]


@dataclass(frozen=True)
class GreedyResult:
    """Token ids emitted by greedy CTC, and the confidence of the words among them."""

    token_ids: tuple[int, ...]
    confidence: float


def greedy_decode(best_ids: np.ndarray, best_log_probs: np.ndarray, length: int) -> GreedyResult:
    """Collapse repeats, drop blanks, and score the word tokens.

    ``best_ids``/``best_log_probs`` are one clip's per-frame argmax and its log-probability; only the
    first ``length`` frames are real (the rest is batch padding).
    """
    ids = np.asarray(best_ids[:length], dtype=np.int64)
    log_probs = np.asarray(best_log_probs[:length], dtype=np.float64)
    emitted: list[int] = []
    word_log_probs: list[float] = []
    previous = -1
    for frame, token in enumerate(ids.tolist()):
        if token != previous and token != BLANK_ID:
            emitted.append(token)
            if frame >= QUERY_FRAMES:
                word_log_probs.append(log_probs[frame])
        elif token == previous and token != BLANK_ID and frame >= QUERY_FRAMES and word_log_probs:
            word_log_probs[-1] = max(word_log_probs[-1], log_probs[frame])
        previous = token
    if word_log_probs:
        mean_log = float(np.mean(word_log_probs))
    elif length > QUERY_FRAMES:
        doubt = float(np.mean(1.0 - np.exp(log_probs[QUERY_FRAMES:])))
        mean_log = float(np.log(max(doubt, 1e-6)))
    else:
        mean_log = _MIN_LOG_PROB
    confidence = float(np.exp(max(mean_log, _MIN_LOG_PROB)))
    return GreedyResult(tuple(emitted), min(confidence, 1.0))
