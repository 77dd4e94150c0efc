"""Audio of one stream addressed by absolute sample index, trimmed as it becomes unneeded."""

from __future__ import annotations

import numpy as np


class StreamAudio:
    """Append float32 chunks; slice ``[start, end)`` by absolute index; drop what precedes ``keep_from``."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.origin = 0  # absolute index of the first kept sample
        self.total = 0  # absolute index one past the last sample received

    def append(self, samples: np.ndarray) -> None:
        """Add samples at the end."""
        if len(samples):
            self._chunks.append(samples)
            self.total += len(samples)

    def _joined(self) -> np.ndarray:
        if len(self._chunks) != 1:
            self._chunks = [np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)]
        return self._chunks[0]

    def slice(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)``; parts already trimmed away are simply absent."""
        data = self._joined()
        lo = max(start, self.origin) - self.origin
        hi = max(lo, min(end, self.total) - self.origin)
        return data[lo:hi].copy()

    def trim(self, keep_from: int) -> None:
        """Forget samples before absolute index ``keep_from``."""
        if keep_from <= self.origin:
            return
        data = self._joined()
        cut = min(keep_from, self.total) - self.origin
        self._chunks = [data[cut:]]
        self.origin += cut
