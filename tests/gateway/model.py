"""What the Gateway controller stand-in observes, as typed values parsed once from API objects (pure).

The stand-in reads GatewayClasses, Gateways, HTTPRoutes, Ingresses, Services and EndpointSlices. Each
``parse_*`` function takes the object as the API server returns it (a JSON dict) and keeps only the
fields the translation reads, so the decisions in ``translate.py`` are checked field by field by mypy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

CONTROLLER_NAME = "senseops.dev/gateway-standin"
GATEWAY_GROUP = "gateway.networking.k8s.io"
NGINX_CLASS = "nginx"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
CANARY_WEIGHT_TOTAL_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight-total"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CANARY_WEIGHT_TOTAL = 100

PathType = Literal["PathPrefix", "Exact"]
Obj = Mapping[str, Any]


@dataclass(frozen=True, order=True)
class ObjectKey:
    """namespace/name of a namespaced object ("" namespace for cluster-scoped ones)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class GatewayClass:
    name: str
    generation: int
    controller_name: str


@dataclass(frozen=True)
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str | None
    # "Same" (the default), "All", or "Selector" (not supported by the stand-in).
    allowed_namespaces: str


@dataclass(frozen=True)
class Gateway:
    key: ObjectKey
    generation: int
    class_name: str
    listeners: tuple[Listener, ...]


@dataclass(frozen=True)
class PathMatch:
    type: PathType
    value: str


@dataclass(frozen=True)
class BackendRef:
    group: str
    kind: str
    namespace: str
    name: str
    port: int | str | None
    weight: int


@dataclass(frozen=True)
class RouteRule:
    matches: tuple[PathMatch, ...]
    backend_refs: tuple[BackendRef, ...]
    # Why the rule cannot be served as written (a match or filter the stand-in does not implement), or None.
    unsupported: str | None = None


@dataclass(frozen=True)
class ParentRef:
    group: str
    kind: str
    namespace: str
    name: str
    section_name: str | None
    port: int | None

    def as_dict(self) -> dict[str, Any]:
        """The parentRef as written back into HTTPRoute status."""
        out: dict[str, Any] = {"group": self.group, "kind": self.kind, "namespace": self.namespace,
                               "name": self.name}
        if self.section_name is not None:
            out["sectionName"] = self.section_name
        if self.port is not None:
            out["port"] = self.port
        return out


@dataclass(frozen=True)
class HTTPRoute:
    key: ObjectKey
    generation: int
    created: str
    hostnames: tuple[str, ...]
    parent_refs: tuple[ParentRef, ...]
    rules: tuple[RouteRule, ...]


@dataclass(frozen=True)
class IngressPath:
    match: PathMatch
    service: str
    port: int | str


@dataclass(frozen=True)
class IngressRule:
    host: str | None
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True)
class Ingress:
    key: ObjectKey
    generation: int
    class_name: str | None
    canary: bool
    canary_weight: int
    canary_weight_total: int
    rules: tuple[IngressRule, ...]


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int


@dataclass(frozen=True)
class Service:
    key: ObjectKey
    ports: tuple[ServicePort, ...]

    def find_port(self, wanted: int | str) -> ServicePort | None:
        """The Service port with this number (or, for a string, this name)."""
        for port in self.ports:
            if (isinstance(wanted, int) and port.port == wanted) or (isinstance(wanted, str) and port.name == wanted):
                return port
        return None


@dataclass(frozen=True)
class SliceEndpoint:
    address: str
    ready: bool


@dataclass(frozen=True)
class EndpointSlice:
    key: ObjectKey
    service: str
    ports: Mapping[str, int]  # EndpointSlice port name ("" when unnamed) -> target port
    endpoints: tuple[SliceEndpoint, ...]


@dataclass(frozen=True)
class Observation:
    """Everything one reconcile reads, gathered before any decision is made."""

    gateway_classes: tuple[GatewayClass, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()
    ingresses: tuple[Ingress, ...] = ()
    services: tuple[Service, ...] = ()
    slices: tuple[EndpointSlice, ...] = ()


# --- parsing -------------------------------------------------------------------------------------


def _meta(obj: Obj) -> tuple[ObjectKey, int]:
    meta = obj.get("metadata") or {}
    return ObjectKey(str(meta.get("namespace") or ""), str(meta["name"])), int(meta.get("generation") or 0)


def parse_gateway_class(obj: Obj) -> GatewayClass:
    key, generation = _meta(obj)
    return GatewayClass(key.name, generation, str((obj.get("spec") or {}).get("controllerName") or ""))


def parse_gateway(obj: Obj) -> Gateway:
    key, generation = _meta(obj)
    spec = obj.get("spec") or {}
    listeners = []
    for item in spec.get("listeners") or []:
        allowed = ((item.get("allowedRoutes") or {}).get("namespaces") or {}).get("from") or "Same"
        listeners.append(Listener(str(item["name"]), int(item["port"]), str(item.get("protocol") or ""),
                                  item.get("hostname"), str(allowed)))
    return Gateway(key, generation, str(spec.get("gatewayClassName") or ""), tuple(listeners))


def _parse_match(item: Obj) -> tuple[PathMatch, str | None]:
    """One HTTPRouteMatch; the second value names the parts the stand-in does not implement."""
    path = item.get("path") or {}
    kind = str(path.get("type") or "PathPrefix")
    value = str(path.get("value") or "/")
    unsupported = [name for name in ("headers", "queryParams", "method") if item.get(name)]
    if kind not in ("PathPrefix", "Exact"):
        unsupported.append(f"path type {kind}")
    match = PathMatch("Exact" if kind == "Exact" else "PathPrefix", value)
    return match, (", ".join(unsupported) or None)


def parse_http_route(obj: Obj) -> HTTPRoute:
    key, generation = _meta(obj)
    spec = obj.get("spec") or {}
    parents = tuple(
        ParentRef(str(ref.get("group") or GATEWAY_GROUP), str(ref.get("kind") or "Gateway"),
                  str(ref.get("namespace") or key.namespace), str(ref["name"]), ref.get("sectionName"),
                  ref.get("port"))
        for ref in spec.get("parentRefs") or []
    )
    rules = []
    for rule in spec.get("rules") or []:
        parsed = [_parse_match(m) for m in rule.get("matches") or []] or [(PathMatch("PathPrefix", "/"), None)]
        problems = [p for _, p in parsed if p]
        if rule.get("filters"):
            problems.append("filters")
        refs = tuple(
            BackendRef(str(ref.get("group") or ""), str(ref.get("kind") or "Service"),
                       str(ref.get("namespace") or key.namespace), str(ref["name"]), ref.get("port"),
                       int(ref.get("weight", 1)))
            for ref in rule.get("backendRefs") or []
        )
        unsupported = f"the gateway stand-in does not implement {', '.join(problems)}" if problems else None
        rules.append(RouteRule(tuple(m for m, _ in parsed), refs, unsupported))
    created = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
    return HTTPRoute(key, generation, created, tuple(spec.get("hostnames") or ()), parents, tuple(rules))


def _int_annotation(annotations: Mapping[str, str], name: str, default: int) -> int:
    raw = annotations.get(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def parse_ingress(obj: Obj) -> Ingress:
    key, generation = _meta(obj)
    annotations: Mapping[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    spec = obj.get("spec") or {}
    rules = []
    for rule in spec.get("rules") or []:
        paths = []
        for item in (rule.get("http") or {}).get("paths") or []:
            service = (item.get("backend") or {}).get("service") or {}
            port = service.get("port") or {}
            port_ref: int | str = int(port["number"]) if port.get("number") else str(port.get("name") or "")
            kind: PathType = "Exact" if item.get("pathType") == "Exact" else "PathPrefix"
            paths.append(IngressPath(PathMatch(kind, str(item.get("path") or "/")), str(service.get("name") or ""),
                                     port_ref))
        rules.append(IngressRule(rule.get("host"), tuple(paths)))
    class_name = spec.get("ingressClassName") or annotations.get(LEGACY_CLASS_ANNOTATION)
    return Ingress(
        key, generation, class_name,
        canary=annotations.get(CANARY_ANNOTATION, "").lower() == "true",
        canary_weight=_int_annotation(annotations, CANARY_WEIGHT_ANNOTATION, 0),
        canary_weight_total=_int_annotation(annotations, CANARY_WEIGHT_TOTAL_ANNOTATION, DEFAULT_CANARY_WEIGHT_TOTAL),
        rules=tuple(rules),
    )


def parse_service(obj: Obj) -> Service:
    key, _ = _meta(obj)
    ports = tuple(ServicePort(str(p.get("name") or ""), int(p["port"])) for p in (obj.get("spec") or {}).get("ports")
                  or [])
    return Service(key, ports)


def parse_endpoint_slice(obj: Obj) -> EndpointSlice:
    key, _ = _meta(obj)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    ports = {str(p.get("name") or ""): int(p["port"]) for p in obj.get("ports") or [] if p.get("port") is not None}
    endpoints = []
    for item in obj.get("endpoints") or []:
        # An unset ready condition means "unknown", which consumers treat as ready (discovery.k8s.io/v1 docs).
        ready = (item.get("conditions") or {}).get("ready")
        for address in item.get("addresses") or []:
            endpoints.append(SliceEndpoint(str(address), ready is not False))
    return EndpointSlice(key, str(labels.get("kubernetes.io/service-name") or ""), ports, tuple(endpoints))
