"""Traffic routers: what each one writes for a weight and how it reads the weight back (pure tables)."""

from __future__ import annotations

from typing import Any

import pytest

from senseops_operator.routers import RouterError
from senseops_operator.routers.fake import FakeRouter
from senseops_operator.routers.gateway_api import route_weight, weighted_rules
from senseops_operator.routers.nginx import CANARY, CANARY_WEIGHT, canary_ingress, ingress_weight
from senseops_operator.routers.replica_ratio import ratio_weight, replica_split


def rule(*refs: tuple[str, int | None], **extra: Any) -> dict[str, Any]:
    return {**extra, "backendRefs": [{"name": n, "port": 8000, **({} if w is None else {"weight": w})}
                                     for n, w in refs]}


@pytest.mark.parametrize(
    ("name", "rules", "weight", "expected"),
    [
        ("stable only becomes a split", [rule(("asr", None))], 5, [rule(("asr", 95), ("asr-canary", 5))]),
        ("existing split is re-weighted", [rule(("asr", 95), ("asr-canary", 5))], 50,
         [rule(("asr", 50), ("asr-canary", 50))]),
        ("weight 0 keeps the candidate listed", [rule(("asr", 50), ("asr-canary", 50))], 0,
         [rule(("asr", 100), ("asr-canary", 0))]),
        ("matches and filters of the rule are kept", [rule(("asr", None), matches=[{"path": {"value": "/ws"}}])],
         100, [rule(("asr", 0), ("asr-canary", 100), matches=[{"path": {"value": "/ws"}}])]),
        ("rules for other services are untouched", [rule(("docs", None)), rule(("asr", None))], 10,
         [rule(("docs", None)), rule(("asr", 90), ("asr-canary", 10))]),
    ],
)
def test_weighted_rules(name: str, rules: list[dict[str, Any]], weight: int, expected: list[dict[str, Any]]) -> None:
    assert weighted_rules(rules, "asr", "asr-canary", weight) == expected


def test_weighted_rules_refuses_a_route_without_the_stable_service() -> None:
    with pytest.raises(RouterError, match="stable Service 'asr'"):
        weighted_rules([rule(("docs", None))], "asr", "asr-canary", 5)


def route(generation: int, accepted_at: int | None, *rules: dict[str, Any]) -> dict[str, Any]:
    parents = [] if accepted_at is None else [{"conditions": [
        {"type": "Accepted", "status": "True", "observedGeneration": accepted_at}]}]
    return {"metadata": {"generation": generation}, "spec": {"rules": list(rules)}, "status": {"parents": parents}}


@pytest.mark.parametrize(
    ("name", "obj", "weight"),
    [
        ("accepted split", route(3, 3, rule(("asr", 95), ("asr-canary", 5))), 5),
        ("not yet accepted by the controller", route(4, 3, rule(("asr", 50), ("asr-canary", 50))), None),
        ("no controller status at all", route(1, None, rule(("asr", 95), ("asr-canary", 5))), None),
        ("stable only is weight 0", route(1, 1, rule(("asr", None))), 0),
        ("rules disagree: cannot tell", route(1, 1, rule(("asr", 95), ("asr-canary", 5)),
                                              rule(("asr", 50), ("asr-canary", 50))), None),
        ("weights need not sum to 100", route(1, 1, rule(("asr", 1), ("asr-canary", 1))), 50),
    ],
)
def test_route_weight(name: str, obj: dict[str, Any], weight: int | None) -> None:
    assert route_weight(obj, "asr", "asr-canary") == weight


STABLE_INGRESS = {
    "metadata": {"name": "asr", "namespace": "ns", "annotations": {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
    "spec": {"ingressClassName": "nginx", "rules": [{"host": "asr.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "asr", "port": {"number": 8000}}}}]}}]},
}
OWNER = {"apiVersion": "senseops.dev/v1alpha1", "kind": "Rollout", "name": "r", "uid": "u", "controller": True}


def test_canary_ingress_copies_hosts_and_points_at_the_candidate() -> None:
    ing = canary_ingress(STABLE_INGRESS, "r", OWNER, "asr", "asr-canary", 5)
    assert ing["metadata"]["name"] == "r-canary" and ing["metadata"]["ownerReferences"] == [OWNER]
    notes = ing["metadata"]["annotations"]
    assert notes[CANARY] == "true" and notes[CANARY_WEIGHT] == "5"
    assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"  # long streams keep working
    assert "kubectl.kubernetes.io/last-applied-configuration" not in notes
    path = ing["spec"]["rules"][0]["http"]["paths"][0]
    assert path["backend"]["service"]["name"] == "asr-canary" and ing["spec"]["ingressClassName"] == "nginx"
    assert STABLE_INGRESS["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "asr"  # type: ignore[index]
    assert ingress_weight(ing) == 5


def test_canary_ingress_needs_a_path_to_stable() -> None:
    with pytest.raises(RouterError, match="no path to the stable Service"):
        canary_ingress(STABLE_INGRESS, "r", OWNER, "other", "asr-canary", 5)


@pytest.mark.parametrize(
    ("name", "obj", "weight"),
    [("missing", None, None), ("not a canary", {"metadata": {"annotations": {}}}, None),
     ("weight", {"metadata": {"annotations": {CANARY: "true", CANARY_WEIGHT: "50"}}}, 50),
     ("garbage weight", {"metadata": {"annotations": {CANARY: "true", CANARY_WEIGHT: "x"}}}, None)],
)
def test_ingress_weight(name: str, obj: dict[str, Any] | None, weight: int | None) -> None:
    assert ingress_weight(obj) == weight


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [(4, 0, (4, 0)), (4, 5, (3, 1)), (4, 50, (2, 2)), (4, 99, (1, 3)), (4, 100, (0, 4)), (1, 50, (1, 1)),
     (10, 5, (9, 1)), (10, 55, (4, 6))],
)
def test_replica_split(total: int, weight: int, split: tuple[int, int]) -> None:
    assert replica_split(total, weight) == split


def test_ratio_weight_confirms_only_when_ready_pods_match() -> None:
    assert ratio_weight(50, 4, 2, 2) == 50
    assert ratio_weight(50, 4, 3, 1) is None
    assert ratio_weight(None, 4, 4, 0) is None


def test_fake_router_confirms_late() -> None:
    r = FakeRouter(lag=1)
    r.set_weight(5)
    assert r.confirmed_weight() == 0 and r.confirmed_weight() == 5 and r.calls == [5]
