"""Rollout decisions (skeleton): accept the spec and resolve stable/candidate models.

Traffic shifting and analysis arrive with the rollout issue; until then a Rollout stays `Pending` with
its weight plan recorded so users can see what will happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from senseops_operator.decide.common import Decision, condition, condition_events, merge_conditions
from senseops_operator.decide.references import models_resolved

RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class RolloutObservation:
    generation: int
    model_phases: dict[str, str | None]


def weight_plan(steps: list[dict[str, Any]]) -> list[int]:
    """The setWeight values in order (the API server already enforces increasing and ending at 100)."""
    return [s["setWeight"] for s in steps if "setWeight" in s]


def decide(spec: dict[str, Any], status: dict[str, Any], obs: RolloutObservation, now: datetime) -> Decision:
    old_conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    stable, candidate = spec["stableModel"]["name"], spec["candidateModel"]["name"]
    resolved = models_resolved({"stableModel": stable, "candidateModel": candidate}, obs.model_phases)
    plan = " → ".join(f"{w}%" for w in weight_plan(spec["steps"]))
    new_conditions = [
        condition("Accepted", "True", "SpecValid", f"weight plan {plan}"),
        resolved,
        condition("Progressing", "False", "AwaitingTrafficRouter", "traffic shifting is not enabled yet"),
    ]
    events = condition_events(old_conditions, new_conditions, skip=("Progressing",))
    return Decision(
        status={
            "observedGeneration": obs.generation,
            "phase": status.get("phase") or "Pending",
            "stableModel": status.get("stableModel") or stable,
            "candidateModel": candidate,
            "actualWeight": status.get("actualWeight", 0),
            "message": f"pending; plan {plan}; {resolved['message']}",
            "conditions": merge_conditions(old_conditions, new_conditions, now, obs.generation),
        },
        events=events,
        requeue_after=RECHECK_SECONDS if resolved["status"] != "True" else None,
    )
