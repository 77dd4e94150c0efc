"""Audio of one stream addressed by absolute sample index, trimmed as it becomes unneeded.

Frames are kept as the chunks they arrived in; a slice copies only the chunks it overlaps, so reading
the newest 100 ms does not copy a 20 s segment.
"""

from __future__ import annotations

import bisect

import numpy as np


class StreamAudio:
    """Append float32 chunks; slice ``[start, end)`` by absolute index; drop what precedes ``keep_from``."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._starts: list[int] = []  # absolute index of each chunk's first sample
        self.origin = 0  # absolute index of the first kept sample
        self.total = 0  # absolute index one past the last sample received

    def append(self, samples: np.ndarray) -> None:
        """Add samples at the end."""
        if len(samples):
            self._chunks.append(samples)
            self._starts.append(self.total)
            self.total += len(samples)

    def slice(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)``; parts already trimmed away (or not received yet) are simply absent."""
        start, end = max(start, self.origin), min(end, self.total)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        pieces = []
        for index in range(first, len(self._chunks)):
            chunk_start = self._starts[index]
            if chunk_start >= end:
                break
            chunk = self._chunks[index]
            lo, hi = max(start - chunk_start, 0), min(end - chunk_start, len(chunk))
            if hi > lo:
                pieces.append(chunk[lo:hi])
        return np.concatenate(pieces).astype(np.float32, copy=False) if len(pieces) > 1 else pieces[0].copy()

    def trim(self, keep_from: int) -> None:
        """Forget samples before absolute index ``keep_from``."""
        keep_from = min(keep_from, self.total)
        if keep_from <= self.origin:
            return
        while self._chunks and self._starts[0] + len(self._chunks[0]) <= keep_from:
            self._chunks.pop(0)
            self._starts.pop(0)
        if self._chunks and self._starts[0] < keep_from:
            cut = keep_from - self._starts[0]
            self._chunks[0] = self._chunks[0][cut:]
            self._starts[0] = keep_from
        self.origin = keep_from
