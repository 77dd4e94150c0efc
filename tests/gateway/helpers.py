"""Test helpers for the gateway data plane: manifests, a load loop, split counting, waiting."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.common.waiting import wait_until
from tests.controlplane.fixtures import ClusterHandle
from tests.gateway.model import CANARY_ANNOTATION, CANARY_WEIGHT_ANNOTATION
from tests.gateway.translate import HOST_PORT_ADDRESS_TYPE

BACKEND_PORT = 8080


# --- manifests -----------------------------------------------------------------------------------


def service(namespace: str, name: str) -> dict[str, Any]:
    """A Service without a selector: its EndpointSlices are written by the test (the pods are ours)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": BACKEND_PORT, "protocol": "TCP"}]}}


def endpoint_slice(namespace: str, service_name: str, endpoints: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """A hand-written EndpointSlice for ``service_name``: (pod address, ready) pairs on port ``http``."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service_name}-test", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service_name,
                                "endpointslice.kubernetes.io/managed-by": "tests.gateway"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in endpoints],
    }


def gateway(namespace: str, name: str, class_name: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"gatewayClassName": class_name, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}


def http_route(namespace: str, name: str, gateway_name: str, backends: Sequence[tuple[str, int]],
               prefix: str = "/") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"parentRefs": [{"name": gateway_name}],
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                            "backendRefs": [{"name": svc, "port": 80, "weight": w} for svc, w in backends]}]},
    }


def ingress(namespace: str, name: str, service_name: str, canary_weight: int | None = None) -> dict[str, Any]:
    """An nginx-class Ingress for path "/"; with ``canary_weight`` it is the canary one."""
    annotations = {} if canary_weight is None else {CANARY_ANNOTATION: "true",
                                                     CANARY_WEIGHT_ANNOTATION: str(canary_weight)}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": service_name, "port": {"number": 80}}}}]}}]},
    }


def apply(cluster: ClusterHandle, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def gateway_port(cluster: ClusterHandle, namespace: str, name: str) -> int:
    """The loopback port the stand-in serves a Gateway on (from its status, once Programmed)."""
    def probe() -> int | None:
        obj = cluster.get_json("gateway", name, "-n", namespace)
        programmed = condition(obj, "Programmed")
        if not programmed or programmed["status"] != "True":
            return None
        for address in obj["status"].get("addresses") or []:
            if address.get("type") == HOST_PORT_ADDRESS_TYPE:
                return int(address["value"].rsplit(":", 1)[1])
        return None
    return wait_until(f"Gateway {namespace}/{name} Programmed with an address", probe)


def ingress_port(cluster: ClusterHandle, namespace: str, name: str) -> int:
    def probe() -> int | None:
        obj = cluster.get_json("ingress", name, "-n", namespace)
        for item in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if item.get("ip") == "127.0.0.1" and item.get("ports"):
                return int(item["ports"][0]["port"])
        return None
    return wait_until(f"Ingress {namespace}/{name} status with the proxy address", probe)


# --- traffic -------------------------------------------------------------------------------------


def split(port: int, count: int, path: str = "/") -> Counter[str]:
    """Send ``count`` GETs through the proxy (keep-alive); count the answering backend address (or the status)."""
    counts: Counter[str] = Counter()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for _ in range(count):
            reply = client.get(path)
            counts[reply.text if reply.status_code == 200 else f"HTTP {reply.status_code}"] += 1
    return counts


@dataclass
class LoadLoop:
    """Sends requests through the proxy one after another in a thread, recording every outcome."""

    port: int
    path: str = "/"
    results: list[tuple[float, str | None]] = field(default_factory=list)  # (monotonic time, backend or None)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LoadLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until("the load loop's first answer", lambda: len(self.results) > 0, timeout_s=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as client:
            while not self._stop.is_set():
                try:
                    reply = client.get(self.path)
                    ok = reply.status_code == 200
                    if not ok:
                        self.errors.append(f"HTTP {reply.status_code}: {reply.text[:100]}")
                    self.results.append((time.monotonic(), reply.text if ok else None))
                except httpx.HTTPError as err:
                    self.errors.append(f"{type(err).__name__}: {err}")
                    self.results.append((time.monotonic(), None))

    @property
    def failed(self) -> int:
        return sum(1 for _, backend in self.results if backend is None)

    def first_window_after(self, start: float, window: int, predicate: Callable[[list[str | None]], bool]
                           ) -> float | None:
        """Time of the last request of the first ``window`` consecutive requests sent after ``start`` for which
        ``predicate`` holds, or None."""
        after = [(t, b) for t, b in self.results if t >= start]
        for end in range(window, len(after) + 1):
            if predicate([b for _, b in after[end - window:end]]):
                return after[end - 1][0]
        return None
