"""The traffic-router interface."""

from __future__ import annotations

from typing import Protocol

FIELD_MANAGER = "senseops-operator"


class RouterError(RuntimeError):
    """The router could not be read or written (missing object, API error); the message says what to fix."""


class TrafficRouter(Protocol):
    def set_weight(self, weight: int) -> None:
        """Ask for `weight` % of new traffic on the candidate (idempotent)."""
        ...

    def confirmed_weight(self) -> int | None:
        """The candidate weight the data plane confirms it applies; None when it cannot tell yet."""
        ...
