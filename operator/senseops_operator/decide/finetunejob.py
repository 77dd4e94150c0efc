"""FineTuneJob decisions (skeleton): accept the spec and report whether the base model is usable.

Training, evaluation and packaging stages arrive with the trainer integration; until then a job stays
`Pending` with `Accepted=True` and `Progressing=False` (reason `AwaitingTrainerIntegration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from senseops_operator.decide.common import Decision, condition, condition_events, merge_conditions
from senseops_operator.decide.references import models_resolved

RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class FineTuneJobObservation:
    generation: int
    model_phases: dict[str, str | None]  # ASRModel name -> phase (None when it does not exist)


def decide(spec: dict[str, Any], status: dict[str, Any], obs: FineTuneJobObservation, now: datetime) -> Decision:
    old_conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    base = spec["baseModel"]["name"]
    resolved = models_resolved({"baseModel": base}, obs.model_phases)
    new_conditions = [
        condition("Accepted", "True", "SpecValid", "spec accepted by the API server and the operator"),
        resolved,
        condition("Progressing", "False", "AwaitingTrainerIntegration", "training Jobs are not launched yet"),
    ]
    message = (
        f"waiting: {resolved['message']}"
        if resolved["status"] != "True"
        else f"accepted; base model {base!r} is Ready"
    )
    events = condition_events(old_conditions, new_conditions, skip=("Progressing",))
    return Decision(
        status={
            "observedGeneration": obs.generation,
            "phase": status.get("phase") or "Pending",
            "stage": status.get("stage") or "Pending",
            "message": message,
            "conditions": merge_conditions(old_conditions, new_conditions, now, obs.generation),
        },
        events=events,
        requeue_after=RECHECK_SECONDS if resolved["status"] != "True" else None,
    )
