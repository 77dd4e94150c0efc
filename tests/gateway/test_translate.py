"""Table tests for the stand-in's pure decisions: weight arithmetic, endpoints, attachment, routing order, status."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from tests.gateway.model import (
    CONTROLLER_NAME,
    Observation,
    PathMatch,
    parse_endpoint_slice,
    parse_gateway,
    parse_gateway_class,
    parse_http_route,
    parse_ingress,
    parse_service,
)
from tests.gateway.translate import (
    HOST_PORT_ADDRESS_TYPE,
    INGRESS_LISTENER,
    Target,
    canary_weights,
    effective_hostnames,
    listener_keys,
    spread_weights,
    translate,
)


@pytest.mark.parametrize(("groups", "expected"), [
    pytest.param([(90, 1), (10, 1)], [9, 1], id="90/10 one endpoint each"),
    pytest.param([(50, 1), (50, 1)], [1, 1], id="50/50"),
    pytest.param([(90, 2), (10, 1)], [9, 2], id="90/10, stable has two endpoints"),
    pytest.param([(1, 3), (1, 7)], [7, 3], id="equal weights, 3 and 7 endpoints"),
    pytest.param([(50, 0), (50, 1)], [0, 1], id="no ready endpoints: weight 0"),
    pytest.param([(0, 3), (100, 2)], [0, 1], id="route weight 0"),
    pytest.param([(10, 0), (0, 4)], [0, 0], id="nothing can serve"),
    pytest.param([], [], id="no backendRefs"),
    pytest.param([(1, 1), (1_000_000, 1)], [1, 256], id="beyond 256: scaled, non-zero stays >= 1"),
    pytest.param([(255, 1), (1, 1)], [255, 1], id="largest exact weight"),
])
def test_spread_weights(groups: list[tuple[int, int]], expected: list[int]) -> None:
    assert spread_weights(groups) == expected


@pytest.mark.parametrize("groups", [
    [(90, 1), (10, 1)], [(90, 3), (10, 2)], [(70, 5), (30, 4)], [(1, 2), (2, 3), (3, 5)],
])
def test_spread_weights_gives_each_service_its_route_share(groups: list[tuple[int, int]]) -> None:
    weights = spread_weights(groups)
    total_servers = sum(n * w for (_, n), w in zip(groups, weights, strict=True))
    total_route = sum(w for w, _ in groups)
    for (route_weight, count), weight in zip(groups, weights, strict=True):
        assert Fraction(count * weight, total_servers) == Fraction(route_weight, total_route)
        assert 1 <= weight <= 256


def test_spread_weights_beyond_256_stays_close() -> None:
    # 33/67 over 7 and 1 endpoints needs 33 vs 469: scaled to 18 vs 256, 32.98 % instead of 33 %.
    weights = spread_weights([(33, 7), (67, 1)])
    assert weights == [18, 256]
    assert abs(Fraction(7 * weights[0], 7 * weights[0] + weights[1]) - Fraction(33, 100)) < Fraction(1, 1000)


@pytest.mark.parametrize(("weight", "total", "expected"), [
    (30, 100, (70, 30)), (0, 100, (100, 0)), (100, 100, (0, 100)), (150, 100, (0, 100)), (-5, 100, (100, 0)),
    (3, 10, (7, 3)),
])
def test_canary_weights(weight: int, total: int, expected: tuple[int, int]) -> None:
    assert canary_weights(weight, total) == expected


@pytest.mark.parametrize(("listener", "route", "expected"), [
    (None, [], ()),
    (None, ["a.example.com"], ("a.example.com",)),
    ("a.example.com", [], ("a.example.com",)),
    ("*.example.com", ["a.example.com", "b.other.org"], ("a.example.com",)),
    ("a.example.com", ["*.example.com"], ("a.example.com",)),
    ("a.example.com", ["b.example.com"], None),
    ("*.example.com", ["example.com"], None),
])
def test_effective_hostnames(listener: str | None, route: list[str], expected: tuple[str, ...] | None) -> None:
    assert effective_hostnames(listener, route) == expected


# --- whole translations --------------------------------------------------------------------------

def _svc(name: str, ns: str = "app") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"name": "http", "port": 80}]}}


def _slice(service: str, endpoints: list[tuple[str, bool | None]], ns: str = "app", port_name: str = "http"
           ) -> dict[str, Any]:
    return {"metadata": {"name": f"{service}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": port_name, "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
                          for ip, ready in endpoints]}


def _route(name: str, refs: list[tuple[str, int]], prefix: str = "/", ns: str = "app", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "web", "namespace": "app"}],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                                "backendRefs": [{"name": n, "port": 80, "weight": w} for n, w in refs]}], **spec}}


def _world(routes: list[dict[str, Any]], slices: list[dict[str, Any]], **extra: Any) -> Observation:
    return Observation(
        gateway_classes=(parse_gateway_class({"metadata": {"name": "standin", "generation": 1},
                                              "spec": {"controllerName": CONTROLLER_NAME}}),
                         parse_gateway_class({"metadata": {"name": "other"}, "spec": {"controllerName": "x/y"}})),
        gateways=(parse_gateway({"metadata": {"name": "web", "namespace": "app", "generation": 2},
                                 "spec": {"gatewayClassName": "standin",
                                          "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"},
                                                        {"name": "tls", "port": 443, "protocol": "HTTPS"}]}}),
                  parse_gateway({"metadata": {"name": "theirs", "namespace": "app"},
                                 "spec": {"gatewayClassName": "other",
                                          "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})),
        routes=tuple(parse_http_route(r) for r in routes),
        services=tuple(parse_service(_svc(n)) for n in ("svc-a", "svc-b")),
        slices=tuple(parse_endpoint_slice(s) for s in slices),
        **extra,
    )


PORTS = {"gateway/app/web/http": 30080, INGRESS_LISTENER: 30081}


def test_listener_keys_cover_our_http_listeners_only() -> None:
    obs = _world([], [])
    assert listener_keys(obs) == ["gateway/app/web/http"]


def test_route_weights_are_spread_over_ready_endpoints() -> None:
    obs = _world([_route("split", [("svc-a", 90), ("svc-b", 10)])],
                 [_slice("svc-a", [("198.18.0.11", True), ("198.18.0.12", None), ("198.18.0.13", False)]),
                  _slice("svc-b", [("198.18.0.21", True)])])
    result = translate(obs, PORTS)
    (backend,) = result.plan.backends
    assert backend.name == "route.app.split.0"
    a, b = backend.groups
    # An unset ready condition counts as ready; ready=false never gets a server.
    assert a.targets == (Target("198.18.0.11", 8080), Target("198.18.0.12", 8080))
    assert b.targets == (Target("198.18.0.21", 8080),)
    assert (a.server_weight, b.server_weight) == (9, 2)
    (frontend,) = result.plan.frontends
    assert (frontend.port, [e.backend for e in frontend.entries]) == (30080, ["route.app.split.0"])


def test_service_without_ready_endpoints_gets_no_traffic() -> None:
    obs = _world([_route("split", [("svc-a", 50), ("svc-b", 50)])],
                 [_slice("svc-a", [("198.18.0.11", True)]), _slice("svc-b", [("198.18.0.21", False)])])
    a, b = translate(obs, PORTS).plan.backends[0].groups
    assert (a.server_weight, b.targets, b.server_weight) == (1, (), 0)


def test_slice_port_is_matched_by_name() -> None:
    obs = _world([_route("r", [("svc-a", 1)])], [_slice("svc-a", [("198.18.0.11", True)], port_name="metrics")])
    assert translate(obs, PORTS).plan.backends[0].groups[0].targets == ()


def test_status_of_gateway_and_routes() -> None:
    obs = _world([_route("good", [("svc-a", 1)]), _route("missing", [("nope", 1)], prefix="/m"),
                  _route("elsewhere", [("svc-a", 1)], ns="other")], [])
    result = translate(obs, PORTS)
    (gateway,) = result.gateways
    assert gateway.addresses == (("IPAddress", "127.0.0.1"), (HOST_PORT_ADDRESS_TYPE, "127.0.0.1:30080"))
    assert [(c.type, c.status) for c in gateway.conditions] == [("Accepted", "True"), ("Programmed", "True")]
    http, tls = gateway.listeners
    assert http.attached_routes == 2
    assert (tls.conditions[0].status, tls.conditions[0].reason) == ("False", "UnsupportedProtocol")
    reasons = {r.key.name: [(c.type, c.reason) for c in r.parents[0].conditions] for r in result.routes}
    assert reasons == {
        "good": [("Accepted", "Accepted"), ("ResolvedRefs", "ResolvedRefs")],
        "missing": [("Accepted", "Accepted"), ("ResolvedRefs", "BackendNotFound")],
        "elsewhere": [("Accepted", "NotAllowedByListeners"), ("ResolvedRefs", "BackendNotFound")],
    }
    assert [c.name for c in result.classes] == ["standin"]


def test_failed_proxy_is_reported_not_programmed() -> None:
    result = translate(_world([], []), PORTS, proxy_ok=False, proxy_message="HAProxy: bad config")
    programmed = result.gateways[0].conditions[1]
    assert (programmed.status, programmed.reason, programmed.message) == ("False", "Invalid", "HAProxy: bad config")


def test_routes_of_other_gateway_classes_are_left_alone() -> None:
    route = _route("theirs", [("svc-a", 1)])
    route["spec"]["parentRefs"] = [{"name": "theirs"}]
    result = translate(_world([route], []), PORTS)
    assert [r.parents for r in result.routes] == [()]
    assert result.plan.backends == ()


def test_unsupported_matches_are_not_accepted() -> None:
    route = _route("hdr", [("svc-a", 1)])
    route["spec"]["rules"][0]["matches"][0]["headers"] = [{"name": "x-canary", "value": "1"}]
    result = translate(_world([route], []), PORTS)
    accepted = result.routes[0].parents[0].conditions[0]
    assert (accepted.status, accepted.reason) == ("False", "UnsupportedValue")
    assert result.plan.frontends[0].entries == ()


def test_routing_order_follows_gateway_api_precedence() -> None:
    routes = [_route("root", [("svc-a", 1)], prefix="/"), _route("api", [("svc-b", 1)], prefix="/api"),
              _route("api-v1", [("svc-a", 1)], prefix="/api/v1"),
              _route("host", [("svc-b", 1)], prefix="/", hostnames=["a.example.com"])]
    exact = _route("exact", [("svc-a", 1)])
    exact["spec"]["rules"][0]["matches"] = [{"path": {"type": "Exact", "value": "/api"}}]
    entries = translate(_world([*routes, exact], []), PORTS).plan.frontends[0].entries
    assert [(e.backend, e.match) for e in entries] == [
        ("route.app.host.0", PathMatch("PathPrefix", "/")),
        ("route.app.exact.0", PathMatch("Exact", "/api")),
        ("route.app.api-v1.0", PathMatch("PathPrefix", "/api/v1")),
        ("route.app.api.0", PathMatch("PathPrefix", "/api")),
        ("route.app.root.0", PathMatch("PathPrefix", "/")),
    ]


def _ingress(name: str, service: str, canary: int | None = None, total: int | None = None,
             host: str | None = None) -> dict[str, Any]:
    annotations = {}
    if canary is not None:
        annotations = {"nginx.ingress.kubernetes.io/canary": "true",
                       "nginx.ingress.kubernetes.io/canary-weight": str(canary)}
    if total is not None:
        annotations["nginx.ingress.kubernetes.io/canary-weight-total"] = str(total)
    rule: dict[str, Any] = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": service, "port": {"number": 80}}}}]}}
    if host:
        rule["host"] = host
    return {"metadata": {"name": name, "namespace": "app", "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "rules": [rule]}}


@pytest.mark.parametrize(("canary", "expected"), [
    pytest.param(_ingress("c", "svc-b", canary=30), (7, 3), id="canary-weight 30"),
    pytest.param(_ingress("c", "svc-b", canary=0), (1, 0), id="canary-weight 0"),
    pytest.param(_ingress("c", "svc-b", canary=100), (0, 1), id="canary-weight 100"),
    pytest.param(_ingress("c", "svc-b", canary=3, total=10), (7, 3), id="canary-weight-total 10"),
    pytest.param(_ingress("c", "svc-b", canary=30, host="other.example.com"), (1,), id="other host: no canary"),
])
def test_canary_ingress(canary: dict[str, Any], expected: tuple[int, ...]) -> None:
    obs = _world([], [_slice("svc-a", [("198.18.0.11", True)]), _slice("svc-b", [("198.18.0.21", True)])],
                 ingresses=(parse_ingress(_ingress("main", "svc-a")), parse_ingress(canary)))
    result = translate(obs, PORTS)
    (backend,) = result.plan.backends
    assert tuple(g.server_weight for g in backend.groups) == expected
    assert {i.key.name for i in result.ingresses} == {"main", "c"}
    assert result.plan.frontends[-1].port == 30081
