"""Types and helpers every decision uses: conditions, events, the Decision record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event the handler should post on the object."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What a reconcile decided: the whole new status, events to post, and when to look again."""

    status: dict[str, Any]
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None  # seconds; None = only on the next change


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with a Z suffix, second precision (what Kubernetes stores)."""
    return now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def condition(
    type_: str, status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> dict[str, Any]:
    """A condition without its transition time (set by :func:`merge_conditions`)."""
    return {"type": type_, "status": status, "reason": reason, "message": message}


def merge_conditions(
    old: list[dict[str, Any]], new: list[dict[str, Any]], now: datetime, generation: int | None
) -> list[dict[str, Any]]:
    """Replace conditions by type; keep `lastTransitionTime` when the status did not change.

    Conditions of types not in `new` are kept as they were (another step may own them).
    """
    previous = {c["type"]: c for c in old}
    merged: dict[str, dict[str, Any]] = dict(previous)
    for cond in new:
        before = previous.get(cond["type"])
        keep = before is not None and before.get("status") == cond["status"] and before.get("lastTransitionTime")
        when = before["lastTransitionTime"] if keep and before is not None else timestamp(now)
        entry = {**cond, "lastTransitionTime": when}
        if generation is not None:
            entry["observedGeneration"] = generation
        merged[cond["type"]] = entry
    return list(merged.values())


def transitions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions in `new` whose status differs from `old` (or that are new)."""
    previous = {c["type"]: c.get("status") for c in old}
    return [c for c in new if previous.get(c["type"]) != c["status"]]


def condition_events(
    old: list[dict[str, Any]], new: list[dict[str, Any]], *, skip: tuple[str, ...] = ()
) -> tuple[Event, ...]:
    """One Event per condition whose status changed: Normal when it became True, Warning otherwise."""
    return tuple(
        Event(
            type="Normal" if c["status"] == "True" else "Warning",
            reason=c["reason"],
            message=f"{c['type']}={c['status']}: {c['message']}",
        )
        for c in transitions(old, new)
        if c["type"] not in skip
    )


def find_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)
