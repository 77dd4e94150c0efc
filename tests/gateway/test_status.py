"""Status bodies: condition transition times, other controllers' route entries, no write when nothing changed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.gateway.model import CONTROLLER_NAME, ObjectKey, ParentRef
from tests.gateway.status import ingress_status, merge_conditions, route_status
from tests.gateway.translate import ConditionIntent, IngressStatusIntent, RouteParentStatusIntent, RouteStatusIntent

OLD, NOW = "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"
ACCEPTED = ConditionIntent("Accepted", "True", "Accepted", "ok")


@pytest.mark.parametrize(("current", "intent", "time"), [
    pytest.param([], ACCEPTED, NOW, id="new condition"),
    pytest.param([{"type": "Accepted", "status": "True", "lastTransitionTime": OLD}], ACCEPTED, OLD, id="same status"),
    pytest.param([{"type": "Accepted", "status": "True", "lastTransitionTime": OLD}],
                 ConditionIntent("Accepted", "True", "Other", "reason changed"), OLD, id="only reason changed"),
    pytest.param([{"type": "Accepted", "status": "False", "lastTransitionTime": OLD}], ACCEPTED, NOW,
                 id="status flipped"),
])
def test_merge_conditions_transition_time(current: list[dict[str, str]], intent: ConditionIntent, time: str) -> None:
    (merged,) = merge_conditions(current, [intent], 7, NOW)
    assert merged["lastTransitionTime"] == time
    assert merged["observedGeneration"] == 7


def _route_intent() -> RouteStatusIntent:
    parent = ParentRef("gateway.networking.k8s.io", "Gateway", "app", "web", None, None)
    return RouteStatusIntent(ObjectKey("app", "r"), 2, (RouteParentStatusIntent(parent, (ACCEPTED,)),))


def test_route_status_keeps_other_controllers_and_is_idempotent() -> None:
    theirs = {"parentRef": {"name": "x"}, "controllerName": "example.com/other", "conditions": []}
    first = route_status({"parents": [theirs]}, _route_intent(), NOW)
    assert first is not None
    assert first["parents"][0] == theirs
    assert first["parents"][1]["controllerName"] == CONTROLLER_NAME
    assert route_status(first, _route_intent(), "2027-01-01T00:00:00Z") is None


def test_route_status_drops_our_entry_when_the_parent_is_gone() -> None:
    ours = route_status({}, _route_intent(), NOW)
    assert ours is not None
    assert route_status(ours, RouteStatusIntent(ObjectKey("app", "r"), 3, ()), NOW) == {"parents": []}
    assert route_status({}, RouteStatusIntent(ObjectKey("app", "r"), 3, ()), NOW) is None


def test_ingress_status_reports_the_proxy_address() -> None:
    body = ingress_status({}, IngressStatusIntent(ObjectKey("app", "i"), 30081))
    assert body == {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ports": [{"port": 30081, "protocol": "TCP"}]}]}}
    assert ingress_status(body, IngressStatusIntent(ObjectKey("app", "i"), 30081)) is None


@pytest.mark.parametrize("module", ["model", "translate", "haproxy_config", "status"])
def test_decision_modules_do_no_io(module: str) -> None:
    """The pure core imports no Kubernetes client, no sockets or processes (the controller does the I/O)."""
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"kubernetes", "socket", "subprocess", "httpx", "os", "threading"}
