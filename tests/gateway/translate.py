"""Kubernetes objects -> a data-plane plan and the status to write back (pure; the stand-in's decisions).

Nothing here talks to the API server or to HAProxy. ``translate`` takes one :class:`Observation` and the
loopback ports the controller gave each listener, and returns

* a :class:`DataplanePlan`: one frontend per Gateway listener (and one for all ``nginx`` Ingresses),
  an ordered list of (hostnames, path match) -> backend entries per frontend, and one backend per
  HTTPRoute rule (per Ingress path) holding the ready endpoints of each referenced Service with their
  per-server weights;
* the status intents for GatewayClasses, Gateways, HTTPRoutes and Ingresses.

Weight arithmetic (:func:`spread_weights`): a rule's ``backendRefs`` weights say how the *Services*
share traffic, but HAProxy balances over *servers* (one per ready endpoint). With Service ``i`` at
route weight ``w_i`` and ``n_i`` ready endpoints, every endpoint of ``i`` gets ``w_i * L / n_i`` where
``L = lcm(n_j)``; all weights are then divided by their gcd. Service ``i`` receives
``n_i * w_i * L / n_i = w_i * L`` of the total ``L * sum(w_j)``: exactly its route share. HAProxy takes
server weights 0..256; when the exact integers exceed 256 they are scaled to a maximum of 256 and
rounded, keeping every non-zero weight at least 1 (relative error at most 0.5 / weight of each server).
A Service with no ready endpoints (or route weight 0) contributes no servers with traffic: its share
goes to the others, and when no Service has a ready endpoint the backend answers 503.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tests.gateway.model import (
    CONTROLLER_NAME,
    GATEWAY_GROUP,
    NGINX_CLASS,
    BackendRef,
    EndpointSlice,
    Gateway,
    HTTPRoute,
    Ingress,
    Listener,
    ObjectKey,
    Observation,
    ParentRef,
    PathMatch,
    Service,
    ServicePort,
)

MAX_SERVER_WEIGHT = 256  # HAProxy's largest server weight
INGRESS_LISTENER = "ingress/nginx"
HOST_PORT_ADDRESS_TYPE = "senseops.dev/HostPort"  # Gateway status address carrying "127.0.0.1:<port>"
PROXY_ADDRESS = "127.0.0.1"


@dataclass(frozen=True, order=True)
class Target:
    """One ready endpoint: pod address and target port."""

    address: str
    port: int


@dataclass(frozen=True)
class ServiceGroup:
    """One resolved backendRef of a rule: a Service port's ready endpoints, all with the same server weight."""

    label: str  # prefix of the HAProxy server names (the Service name, made unique within the backend)
    service: ObjectKey
    route_weight: int
    targets: tuple[Target, ...]
    server_weight: int


@dataclass(frozen=True)
class BackendPlan:
    name: str
    groups: tuple[ServiceGroup, ...]


@dataclass(frozen=True)
class RoutingEntry:
    """Requests whose Host is one of ``hostnames`` (any when empty) and whose path matches go to ``backend``."""

    hostnames: tuple[str, ...]
    match: PathMatch
    backend: str


@dataclass(frozen=True)
class FrontendPlan:
    name: str
    listener: str  # the listener key the port was allocated for
    port: int
    entries: tuple[RoutingEntry, ...]


@dataclass(frozen=True)
class DataplanePlan:
    frontends: tuple[FrontendPlan, ...] = ()
    backends: tuple[BackendPlan, ...] = ()


@dataclass(frozen=True)
class ConditionIntent:
    type: str
    status: str  # "True" | "False"
    reason: str
    message: str


@dataclass(frozen=True)
class ListenerStatusIntent:
    name: str
    attached_routes: int
    conditions: tuple[ConditionIntent, ...]


@dataclass(frozen=True)
class GatewayStatusIntent:
    key: ObjectKey
    generation: int
    addresses: tuple[tuple[str, str], ...]  # (type, value)
    conditions: tuple[ConditionIntent, ...]
    listeners: tuple[ListenerStatusIntent, ...]


@dataclass(frozen=True)
class RouteParentStatusIntent:
    parent: ParentRef
    conditions: tuple[ConditionIntent, ...]


@dataclass(frozen=True)
class RouteStatusIntent:
    key: ObjectKey
    generation: int
    parents: tuple[RouteParentStatusIntent, ...]


@dataclass(frozen=True)
class IngressStatusIntent:
    key: ObjectKey
    port: int


@dataclass(frozen=True)
class ClassStatusIntent:
    name: str
    generation: int
    conditions: tuple[ConditionIntent, ...]


@dataclass(frozen=True)
class Translation:
    plan: DataplanePlan
    classes: tuple[ClassStatusIntent, ...]
    gateways: tuple[GatewayStatusIntent, ...]
    routes: tuple[RouteStatusIntent, ...]
    ingresses: tuple[IngressStatusIntent, ...]


# --- arithmetic ----------------------------------------------------------------------------------


def spread_weights(groups: Sequence[tuple[int, int]]) -> list[int]:
    """Per-server weight for each (route weight, ready endpoint count) group; see the module docstring."""
    active = [(w, n) for w, n in groups if w > 0 and n > 0]
    if not active:
        return [0 for _ in groups]
    lcm = math.lcm(*(n for _, n in active))
    exact = [w * (lcm // n) if w > 0 and n > 0 else 0 for w, n in groups]
    divisor = math.gcd(*(x for x in exact if x > 0))
    exact = [x // divisor for x in exact]
    largest = max(exact)
    if largest <= MAX_SERVER_WEIGHT:
        return exact
    return [max(1, round(x * MAX_SERVER_WEIGHT / largest)) if x > 0 else 0 for x in exact]


def canary_weights(canary_weight: int, total: int) -> tuple[int, int]:
    """(primary, canary) route weights of an NGINX canary: the canary weight clamped to [0, total]."""
    total = max(total, 1)
    canary = min(max(canary_weight, 0), total)
    return total - canary, canary


# --- endpoints -----------------------------------------------------------------------------------


def ready_targets(service: Service, port: ServicePort, slices: Iterable[EndpointSlice]) -> tuple[Target, ...]:
    """Ready endpoints of one Service port: EndpointSlices of that Service, slice port matched by name."""
    found: set[Target] = set()
    for item in slices:
        if item.key.namespace != service.key.namespace or item.service != service.key.name:
            continue
        target_port = item.ports.get(port.name)
        if target_port is None:
            continue
        found.update(Target(ep.address, target_port) for ep in item.endpoints if ep.ready)
    return tuple(sorted(found))


def _resolve(ref: BackendRef, route_ns: str, services: Mapping[ObjectKey, Service]
             ) -> tuple[Service, ServicePort] | ConditionIntent:
    """The Service port a backendRef names, or the ResolvedRefs=False condition saying why not."""
    if ref.group not in ("", "core") or ref.kind != "Service":
        return ConditionIntent("ResolvedRefs", "False", "InvalidKind",
                               f"backendRef {ref.name}: only core Services are supported, not {ref.group}/{ref.kind}")
    if ref.namespace != route_ns:
        return ConditionIntent("ResolvedRefs", "False", "RefNotPermitted",
                               f"backendRef {ref.namespace}/{ref.name}: cross-namespace references are not supported "
                               "by the gateway stand-in (no ReferenceGrant support)")
    service = services.get(ObjectKey(ref.namespace, ref.name))
    if service is None:
        return ConditionIntent("ResolvedRefs", "False", "BackendNotFound",
                               f"Service {ref.namespace}/{ref.name} not found")
    port = service.find_port(ref.port) if ref.port is not None else None
    if port is None:
        return ConditionIntent("ResolvedRefs", "False", "BackendNotFound",
                               f"Service {ref.namespace}/{ref.name} has no port {ref.port}")
    return service, port


def build_backend(name: str, refs: Sequence[tuple[Service, ServicePort, int]],
                  slices: Sequence[EndpointSlice]) -> BackendPlan:
    """One backend from resolved (Service, port, route weight) refs, with weights spread over ready endpoints."""
    targets = [ready_targets(svc, port, slices) for svc, port, _ in refs]
    weights = spread_weights([(w, len(t)) for (_, _, w), t in zip(refs, targets, strict=True)])
    seen: dict[str, int] = {}
    groups = []
    for (svc, _, route_weight), group_targets, weight in zip(refs, targets, weights, strict=True):
        count = seen.get(svc.key.name, 0)
        seen[svc.key.name] = count + 1
        label = svc.key.name if count == 0 else f"{svc.key.name}.{count}"
        groups.append(ServiceGroup(label, svc.key, route_weight, group_targets, weight))
    return BackendPlan(name, tuple(groups))


# --- Gateway API ---------------------------------------------------------------------------------


def gateway_listener_key(gateway: Gateway, listener: Listener) -> str:
    return f"gateway/{gateway.key.namespace}/{gateway.key.name}/{listener.name}"


def our_gateways(obs: Observation) -> list[Gateway]:
    ours = {c.name for c in obs.gateway_classes if c.controller_name == CONTROLLER_NAME}
    return sorted((g for g in obs.gateways if g.class_name in ours), key=lambda g: g.key)


def listener_keys(obs: Observation) -> list[str]:
    """Every listener that needs a loopback port: HTTP listeners of our Gateways, plus one for nginx Ingresses."""
    keys = [gateway_listener_key(g, li) for g in our_gateways(obs) for li in g.listeners if li.protocol == "HTTP"]
    if any(ing.class_name == NGINX_CLASS for ing in obs.ingresses):
        keys.append(INGRESS_LISTENER)
    return keys


def _hostname_matches(pattern: str, hostname: str) -> bool:
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:]) and hostname != pattern[2:]
    return pattern == hostname


def effective_hostnames(listener_hostname: str | None, route_hostnames: Sequence[str]) -> tuple[str, ...] | None:
    """Hostnames a route serves on a listener: () for any host, None when the two do not intersect."""
    if listener_hostname is None:
        return tuple(route_hostnames)
    if not route_hostnames:
        return (listener_hostname,)
    out = []
    for host in route_hostnames:
        if _hostname_matches(listener_hostname, host) or host == listener_hostname:
            out.append(host)
        elif _hostname_matches(host, listener_hostname):
            out.append(listener_hostname)
    return tuple(dict.fromkeys(out)) or None


def _attach(route: HTTPRoute, parent: ParentRef, gateway: Gateway
            ) -> tuple[list[tuple[Listener, tuple[str, ...]]], ConditionIntent]:
    """The listeners of ``gateway`` that accept ``route`` through ``parent``, and the Accepted condition."""
    candidates = [li for li in gateway.listeners
                  if (parent.section_name is None or li.name == parent.section_name)
                  and (parent.port is None or li.port == parent.port)]
    if not candidates:
        return [], ConditionIntent("Accepted", "False", "NoMatchingParent",
                                   f"Gateway {gateway.key} has no listener matching sectionName/port of this parentRef")
    same_namespace = route.key.namespace == gateway.key.namespace
    allowed = [li for li in candidates if li.protocol == "HTTP" and (
        li.allowed_namespaces == "All" or (li.allowed_namespaces == "Same" and same_namespace))]
    if not allowed:
        return [], ConditionIntent("Accepted", "False", "NotAllowedByListeners",
                                   "no HTTP listener of the Gateway allows routes from this namespace "
                                   "(the stand-in supports allowedRoutes.namespaces.from Same and All)")
    attached = [(li, hosts) for li in allowed
                if (hosts := effective_hostnames(li.hostname, route.hostnames)) is not None]
    if not attached:
        return [], ConditionIntent("Accepted", "False", "NoMatchingListenerHostname",
                                   "no listener hostname intersects the route's hostnames")
    unsupported = next((r.unsupported for r in route.rules if r.unsupported), None)
    if unsupported:
        return [], ConditionIntent("Accepted", "False", "UnsupportedValue", unsupported)
    return attached, ConditionIntent("Accepted", "True", "Accepted", "route is attached and programmed into HAProxy")


def _entry_order(hostnames: tuple[str, ...], match: PathMatch, tiebreak: tuple[str, str, int]
                 ) -> tuple[int, int, int, str, str, int]:
    """Gateway API precedence: exact hosts, then wildcard hosts, then any host; Exact paths, then longer prefixes;
    then the older route, then namespace/name, then rule order."""
    host_rank = 2 if not hostnames else (1 if any(h.startswith("*.") for h in hostnames) else 0)
    return (host_rank, 0 if match.type == "Exact" else 1, -len(match.value), *tiebreak)


def _route_backends(obs: Observation, services: Mapping[ObjectKey, Service]
                    ) -> tuple[dict[tuple[ObjectKey, int], BackendPlan], dict[ObjectKey, ConditionIntent]]:
    backends: dict[tuple[ObjectKey, int], BackendPlan] = {}
    resolved: dict[ObjectKey, ConditionIntent] = {}
    for route in obs.routes:
        problem: ConditionIntent | None = None
        for index, rule in enumerate(route.rules):
            refs: list[tuple[Service, ServicePort, int]] = []
            for ref in rule.backend_refs:
                outcome = _resolve(ref, route.key.namespace, services)
                if isinstance(outcome, ConditionIntent):
                    problem = problem or outcome
                else:
                    refs.append((*outcome, ref.weight))
            name = f"route.{route.key.namespace}.{route.key.name}.{index}"
            backends[(route.key, index)] = build_backend(name, refs, obs.slices)
        resolved[route.key] = problem or ConditionIntent("ResolvedRefs", "True", "ResolvedRefs",
                                                         "all backendRefs resolved")
    return backends, resolved


def _condition(ok: bool, kind: str, ok_reason: str, bad_reason: str, ok_message: str, bad_message: str
               ) -> ConditionIntent:
    return ConditionIntent(kind, "True" if ok else "False", ok_reason if ok else bad_reason,
                           ok_message if ok else bad_message)


def translate(obs: Observation, ports: Mapping[str, int], proxy_ok: bool = True,
              proxy_message: str = "") -> Translation:
    """The whole decision: what HAProxy must serve and what status every object gets.

    ``ports`` maps each key of :func:`listener_keys` to its loopback port (allocated by the controller);
    a listener without a port is left out. ``proxy_ok`` is False when the last attempt to program HAProxy
    failed (``proxy_message`` says why); Gateways are then reported Programmed=False.
    """
    services = {svc.key: svc for svc in obs.services}
    gateways = {g.key: g for g in our_gateways(obs)}
    rule_backends, resolved = _route_backends(obs, services)

    entries: dict[str, list[tuple[tuple[int, int, int, str, str, int], RoutingEntry]]] = {}
    attached_count: dict[str, int] = {}
    used_backends: dict[str, BackendPlan] = {}
    route_status = []
    for route in sorted(obs.routes, key=lambda r: r.key):
        parents = []
        for parent in route.parent_refs:
            gateway = gateways.get(ObjectKey(parent.namespace, parent.name))
            if parent.group != GATEWAY_GROUP or parent.kind != "Gateway" or gateway is None:
                continue  # not a parent this controller owns: leave its status to whoever does
            attached, accepted = _attach(route, parent, gateway)
            for listener, hosts in attached:
                key = gateway_listener_key(gateway, listener)
                if key not in ports:
                    continue
                attached_count[key] = attached_count.get(key, 0) + 1
                for index, rule in enumerate(route.rules):
                    backend = rule_backends[(route.key, index)]
                    used_backends[backend.name] = backend
                    tiebreak = (route.created, str(route.key), index)
                    entries.setdefault(key, []).extend(
                        (_entry_order(hosts, m, tiebreak), RoutingEntry(hosts, m, backend.name)) for m in rule.matches)
            parents.append(RouteParentStatusIntent(parent, (accepted, resolved[route.key])))
        # Every route gets an intent, even with no parent of ours: status.route_status then removes entries we
        # wrote for a parent the route no longer names.
        route_status.append(RouteStatusIntent(route.key, route.generation, tuple(parents)))

    frontends = []
    gateway_status = []
    for gateway in gateways.values():
        listeners = []
        for listener in gateway.listeners:
            key = gateway_listener_key(gateway, listener)
            port = ports.get(key)
            supported = listener.protocol == "HTTP"
            if supported and port is not None:
                ordered = tuple(e for _, e in sorted(entries.get(key, []), key=lambda pair: pair[0]))
                frontends.append(FrontendPlan(f"gw.{gateway.key.namespace}.{gateway.key.name}.{listener.name}",
                                              key, port, ordered))
            listeners.append(ListenerStatusIntent(listener.name, attached_count.get(key, 0), (
                _condition(supported, "Accepted", "Accepted", "UnsupportedProtocol", "listener accepted",
                           f"the gateway stand-in serves HTTP listeners only, not {listener.protocol}"),
                _condition(supported and port is not None and proxy_ok, "Programmed", "Programmed", "Invalid",
                           f"HAProxy listens on {PROXY_ADDRESS}:{port} for this listener (spec port {listener.port})",
                           proxy_message or "listener is not served"),
                ConditionIntent("ResolvedRefs", "True", "ResolvedRefs", "no references to resolve"),
            )))
        ports_of_gateway = [ports[k] for k in (gateway_listener_key(gateway, li) for li in gateway.listeners)
                            if k in ports]
        addresses = ((("IPAddress", PROXY_ADDRESS),) if ports_of_gateway else ()) + tuple(
            (HOST_PORT_ADDRESS_TYPE, f"{PROXY_ADDRESS}:{p}") for p in ports_of_gateway)
        programmed = proxy_ok and bool(ports_of_gateway)
        gateway_status.append(GatewayStatusIntent(gateway.key, gateway.generation, addresses, (
            ConditionIntent("Accepted", "True", "Accepted", f"accepted by {CONTROLLER_NAME}"),
            _condition(programmed, "Programmed", "Programmed", "Invalid",
                       "HAProxy serves this Gateway on " + ", ".join(f"{PROXY_ADDRESS}:{p}" for p in ports_of_gateway),
                       proxy_message or "no HTTP listener could be served"),
        ), tuple(listeners)))

    ingress_frontend, ingress_backends, ingress_status = _translate_ingresses(
        obs, services, ports.get(INGRESS_LISTENER))
    if ingress_frontend is not None:
        frontends.append(ingress_frontend)
    used_backends.update({b.name: b for b in ingress_backends})

    classes = tuple(
        ClassStatusIntent(c.name, c.generation, (ConditionIntent("Accepted", "True", "Accepted",
                                                                 "handled by the SenseOps gateway stand-in"),))
        for c in sorted(obs.gateway_classes, key=lambda c: c.name) if c.controller_name == CONTROLLER_NAME)
    plan = DataplanePlan(tuple(frontends), tuple(sorted(used_backends.values(), key=lambda b: b.name)))
    return Translation(plan, classes, tuple(gateway_status), tuple(route_status), ingress_status)


# --- NGINX canary Ingresses (the legacy router) --------------------------------------------------


def _translate_ingresses(obs: Observation, services: Mapping[ObjectKey, Service], port: int | None
                         ) -> tuple[FrontendPlan | None, list[BackendPlan], tuple[IngressStatusIntent, ...]]:
    """nginx-class Ingresses: each primary path becomes a backend; a canary Ingress with the same host and
    path adds its Service at ``canary-weight`` out of ``canary-weight-total`` (ingress-nginx semantics; when
    several canaries match, the first by namespace/name wins)."""
    ours = sorted((i for i in obs.ingresses if i.class_name == NGINX_CLASS), key=lambda i: i.key)
    if port is None or not ours:
        return None, [], ()
    canaries: dict[tuple[str, str | None, PathMatch], tuple[Ingress, str, int | str]] = {}
    for ing in ours:
        if ing.canary:
            for rule in ing.rules:
                for path in rule.paths:
                    canaries.setdefault((ing.key.namespace, rule.host, path.match), (ing, path.service, path.port))
    backends = []
    ordered: list[tuple[tuple[int, int, int, str, str, int], RoutingEntry]] = []
    for ing in (i for i in ours if not i.canary):
        for r_index, rule in enumerate(ing.rules):
            for p_index, path in enumerate(rule.paths):
                refs: list[tuple[Service, ServicePort, int]] = []
                canary = canaries.get((ing.key.namespace, rule.host, path.match))
                primary_weight, canary_weight = (canary_weights(canary[0].canary_weight, canary[0].canary_weight_total)
                                                 if canary else (1, 0))
                wanted = [(path.service, path.port, primary_weight)]
                if canary:
                    wanted.append((canary[1], canary[2], canary_weight))
                for service_name, service_port, weight in wanted:
                    service = services.get(ObjectKey(ing.key.namespace, service_name))
                    found = service.find_port(service_port) if service else None
                    if service is not None and found is not None:
                        refs.append((service, found, weight))
                name = f"ingress.{ing.key.namespace}.{ing.key.name}.{r_index}.{p_index}"
                backends.append(build_backend(name, refs, obs.slices))
                hosts = (rule.host,) if rule.host else ()
                ordered.append((_entry_order(hosts, path.match, ("", str(ing.key), r_index * 1000 + p_index)),
                                RoutingEntry(hosts, path.match, name)))
    frontend = FrontendPlan("ingress.nginx", INGRESS_LISTENER, port,
                            tuple(e for _, e in sorted(ordered, key=lambda pair: pair[0])))
    return frontend, backends, tuple(IngressStatusIntent(i.key, port) for i in ours)

