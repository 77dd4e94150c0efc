"""A router that only remembers (unit tests): confirms what it was asked, optionally a few calls late."""

from __future__ import annotations


class FakeRouter:
    def __init__(self, weight: int = 0, lag: int = 0) -> None:
        self.asked, self.applied, self.lag, self._pending = weight, weight, lag, 0
        self.calls: list[int] = []

    def set_weight(self, weight: int) -> None:
        self.calls.append(weight)
        self.asked, self._pending = weight, self.lag

    def confirmed_weight(self) -> int | None:
        if self._pending > 0:
            self._pending -= 1
            return self.applied
        self.applied = self.asked
        return self.applied
