"""Replica-ratio router, for clusters with neither Gateway API nor NGINX: one Service selects stable and
candidate pods alike, so the share of traffic is the share of ready pods. Coarse (with 4 pods the steps are
25 %), but needs nothing but a Deployment. The weight asked for is kept in an annotation on the candidate
Deployment; it counts as confirmed when the ready pods match the split for it."""

from __future__ import annotations

import math

WEIGHT_ANNOTATION = "senseops.dev/weight"


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, candidate) replicas for a weight (pure): the candidate rounded up, at least one while the weight
    is above 0; stable keeps at least one until the weight is 100."""
    if weight <= 0:
        return total, 0
    if weight >= 100:
        return 0, total
    canary = min(max(1, math.ceil(total * weight / 100)), total - 1) if total > 1 else 1
    return total - canary if total > 1 else 1, canary


def ratio_weight(asked: int | None, total: int, stable_ready: int, canary_ready: int) -> int | None:
    """The asked weight once the ready pods match its split; None while they do not (pure)."""
    if asked is None:
        return None
    return asked if (stable_ready, canary_ready) == replica_split(total, asked) else None
