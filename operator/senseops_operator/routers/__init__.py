"""Traffic routers for Rollouts: one small Protocol (`base.TrafficRouter`), one module per router.

Each module keeps *what* to write in pure functions (tested with tables) and does the I/O in a thin class.
"""

from __future__ import annotations

from senseops_operator.routers.base import RouterError, TrafficRouter

__all__ = ["RouterError", "TrafficRouter"]
