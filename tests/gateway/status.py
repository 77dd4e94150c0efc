"""Status intents -> the status bodies to write (pure).

Each ``*_status`` function takes the object's current ``status`` and returns the full new ``status``, or
None when nothing changed (so the controller writes nothing). ``lastTransitionTime`` is kept from the
current condition of the same type while its ``status`` stays the same, as Kubernetes conditions do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.gateway.model import CONTROLLER_NAME, GATEWAY_GROUP
from tests.gateway.translate import (
    PROXY_ADDRESS,
    ClassStatusIntent,
    ConditionIntent,
    GatewayStatusIntent,
    IngressStatusIntent,
    RouteStatusIntent,
)

Status = Mapping[str, Any]


def merge_conditions(current: Sequence[Mapping[str, Any]], intents: Sequence[ConditionIntent], generation: int,
                     now: str) -> list[dict[str, Any]]:
    """Conditions for ``intents``, keeping lastTransitionTime of those whose status did not change."""
    previous = {c.get("type"): c for c in current}
    out = []
    for intent in intents:
        before = previous.get(intent.type)
        unchanged = before is not None and before.get("status") == intent.status
        out.append({
            "type": intent.type, "status": intent.status, "reason": intent.reason, "message": intent.message,
            "observedGeneration": generation,
            "lastTransitionTime": str(before["lastTransitionTime"]) if unchanged and before else now,
        })
    return out


def _changed(current: Status, new: dict[str, Any]) -> dict[str, Any] | None:
    return None if {k: current.get(k) for k in new} == new else new


def class_status(current: Status, intent: ClassStatusIntent, now: str) -> dict[str, Any] | None:
    conditions = merge_conditions(current.get("conditions") or [], intent.conditions, intent.generation, now)
    return _changed(current, {"conditions": conditions})


def gateway_status(current: Status, intent: GatewayStatusIntent, now: str) -> dict[str, Any] | None:
    listeners_now = {li.get("name"): li for li in current.get("listeners") or []}
    listeners = [{
        "name": li.name,
        "supportedKinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
        "attachedRoutes": li.attached_routes,
        "conditions": merge_conditions((listeners_now.get(li.name) or {}).get("conditions") or [], li.conditions,
                                       intent.generation, now),
    } for li in intent.listeners]
    new = {
        "addresses": [{"type": kind, "value": value} for kind, value in intent.addresses],
        "conditions": merge_conditions(current.get("conditions") or [], intent.conditions, intent.generation, now),
        "listeners": listeners,
    }
    return _changed(current, new)


def _same_parent(entry: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    ref = entry.get("parentRef") or {}
    return all(ref.get(k) == v for k, v in wanted.items())


def route_status(current: Status, intent: RouteStatusIntent, now: str) -> dict[str, Any] | None:
    """HTTPRoute status: our entries in ``parents`` replaced, other controllers' entries kept."""
    current_parents = list(current.get("parents") or [])
    ours = []
    for parent in intent.parents:
        wanted = parent.parent.as_dict()
        before: Mapping[str, Any] = next((p for p in current_parents
                       if p.get("controllerName") == CONTROLLER_NAME and _same_parent(p, wanted)), {})
        ours.append({"parentRef": wanted, "controllerName": CONTROLLER_NAME,
                     "conditions": merge_conditions(before.get("conditions") or [], parent.conditions,
                                                    intent.generation, now)})
    others = [p for p in current_parents if p.get("controllerName") != CONTROLLER_NAME]
    return None if others + ours == current_parents else {"parents": others + ours}


def ingress_status(current: Status, intent: IngressStatusIntent) -> dict[str, Any] | None:
    new = {"loadBalancer": {"ingress": [{"ip": PROXY_ADDRESS, "ports": [{"port": intent.port, "protocol": "TCP"}]}]}}
    return _changed(current, new)
