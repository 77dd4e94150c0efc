"""Shared decision for kinds that reference ASRModels: are the references there and ready?"""

from __future__ import annotations

from typing import Any

from senseops_operator.decide.common import condition


def models_resolved(refs: dict[str, str], phases: dict[str, str | None]) -> dict[str, Any]:
    """`ModelsResolved` condition from {role: model name} and {model name: phase or None if missing}."""
    missing = [f"{role} {name!r}" for role, name in refs.items() if phases.get(name) is None]
    if missing:
        return condition("ModelsResolved", "False", "ModelNotFound", "ASRModel not found: " + ", ".join(missing))
    unready = [f"{role} {name!r} is {phases[name]}" for role, name in refs.items() if phases.get(name) != "Ready"]
    if unready:
        return condition("ModelsResolved", "False", "ModelNotReady", "; ".join(unready))
    return condition("ModelsResolved", "True", "Resolved", "all referenced ASRModels are Ready")
