"""The gateway data plane end to end: Gateway API objects and NGINX canary Ingresses on the real API server,
translated by the controller stand-in into a real HAProxy, with real backends in the test pod network.

Requests go only to the proxy on 127.0.0.1 and to pod addresses inside this run's own network namespace.
"""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config
from websockets.sync.client import connect

from tests.controlplane.fixtures import ClusterHandle
from tests.gateway.conftest import GATEWAY_CLASS, BackendPods, GatewayDataplane
from tests.gateway.haproxy import parse_server_responses
from tests.gateway.helpers import (
    LoadLoop,
    apply,
    condition,
    endpoint_slice,
    gateway,
    gateway_port,
    http_route,
    ingress,
    ingress_port,
    service,
    split,
    wait_until,
)

pytestmark = pytest.mark.cluster

SAMPLE = 1000
TOLERANCE_POINTS = 3.0
EFFECT_BOUND_S = 2.0  # issue 8: a weight change takes effect within 2 s
SETTLE_REQUESTS = 300  # HAProxy's dynamic round-robin catches up after `set weight` (DESIGN §6)


def share(counts: dict[str, int], backend: str) -> float:
    return 100.0 * counts.get(backend, 0) / sum(counts.values())


def two_services(cluster: ClusterHandle, ns: str, a: list[tuple[str, bool]], b: list[tuple[str, bool]]) -> None:
    apply(cluster, service(ns, "svc-a"), service(ns, "svc-b"), endpoint_slice(ns, "svc-a", a),
          endpoint_slice(ns, "svc-b", b))


def route_weights(cluster: ClusterHandle, ns: str, name: str, a: int, b: int) -> None:
    """Set the split route's weights with one PATCH straight to the API server (no kubectl start-up in the
    measured time)."""
    patch = {"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                 "backendRefs": [{"name": "svc-a", "port": 80, "weight": a},
                                                 {"name": "svc-b", "port": 80, "weight": b}]}]}}
    with config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", ns, "httproutes", name, patch)


def server_weights(dataplane: GatewayDataplane, backend: str, servers: list[str]) -> list[int]:
    return [dataplane.proxy.get_weight(backend, s) for s in servers]


def test_standard_crds_are_served(gateway_crds: ClusterHandle) -> None:
    names = set(gateway_crds.kubectl("api-resources", "--api-group=gateway.networking.k8s.io", "-o", "name"
                                     ).stdout.split())
    assert {f"{kind}.gateway.networking.k8s.io" for kind in ("gatewayclasses", "gateways", "httproutes", "grpcroutes",
                                                             "referencegrants")} <= names
    annotations = gateway_crds.get_json("crd", "httproutes.gateway.networking.k8s.io")["metadata"]["annotations"]
    assert annotations["gateway.networking.k8s.io/bundle-version"] == "v1.6.1"
    assert annotations["gateway.networking.k8s.io/channel"] == "standard"


def test_status_is_written_back(gateway_dataplane: GatewayDataplane, backend_pods: BackendPods,
                                gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    a, b = backend_pods.addresses[:2]
    two_services(cluster, ns, [(a, True)], [(b, True)])
    broken = http_route(ns, "broken", "web", [("no-such-service", 1)], prefix="/broken")
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "web", "web", [("svc-a", 1)]), broken)

    port = gateway_port(cluster, ns, "web")
    gw = cluster.get_json("gateway", "web", "-n", ns)
    assert condition(gw, "Accepted")["status"] == "True"  # type: ignore[index]
    assert {"type": "IPAddress", "value": "127.0.0.1"} in gw["status"]["addresses"]
    wait_until("two routes attached", lambda: cluster.get_json("gateway", "web", "-n", ns)["status"]["listeners"][0]
               ["attachedRoutes"] == 2)
    assert condition(cluster.get_json("gatewayclass", GATEWAY_CLASS), "Accepted")["status"] == "True"  # type: ignore[index]

    def parent_conditions(name: str) -> dict[str, str] | None:
        parents = (cluster.get_json("httproute", name, "-n", ns).get("status") or {}).get("parents") or []
        return {c["type"]: c["reason"] for c in parents[0]["conditions"]} if parents else None

    assert wait_until("route status", lambda: parent_conditions("web")) == {"Accepted": "Accepted",
                                                                          "ResolvedRefs": "ResolvedRefs"}
    assert wait_until("broken route status", lambda: parent_conditions("broken")) == {
        "Accepted": "Accepted", "ResolvedRefs": "BackendNotFound"}
    assert split(port, 20) == {a: 20}
    # The broken route's rule has no backend with endpoints: HAProxy answers 503, never another Service.
    assert split(port, 5, path="/broken/x") == {"HTTP 503": 5}
    assert split(port, 5, path="/brokenx") == {a: 5}  # a path prefix matches whole path elements only


def test_weights_split_and_change_without_failures(gateway_dataplane: GatewayDataplane, backend_pods: BackendPods,
                                                    gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    a, b = backend_pods.addresses[:2]
    two_services(cluster, ns, [(a, True)], [(b, True)])
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "split", "web", [("svc-a", 90), ("svc-b", 10)]))
    port = gateway_port(cluster, ns, "web")
    backend = f"route.{ns}.split.0"
    wait_until("90/10 weights in HAProxy",
               lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == [9, 1])

    split(port, SETTLE_REQUESTS)
    before = split(port, SAMPLE)
    print(f"\n90/10 split over {SAMPLE} requests: {dict(before)}")
    assert abs(share(before, b) - 10.0) <= TOLERANCE_POINTS, before
    assert sum(before.values()) == before[a] + before[b], f"failed requests: {before}"

    with LoadLoop(port) as load:
        time.sleep(0.5)
        start = time.monotonic()  # the measured time includes building the API client (milliseconds)
        route_weights(cluster, ns, "split", 50, 50)
        wait_until("50/50 weights in HAProxy",
                   lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == [1, 1], timeout_s=10)
        in_proxy = time.monotonic() - start
        time.sleep(1.5)
    # In effect = the first 40 consecutive answers with b at >= 25 % (impossible under 90/10: exactly 4 of 40).
    effect_at = load.first_window_after(start, 40, lambda window: window.count(b) >= 10)
    assert effect_at is not None, "the 50/50 split never showed in the traffic"
    in_traffic = effect_at - start
    print(f"50/50 in HAProxy after {in_proxy:.2f}s, in traffic after {in_traffic:.2f}s; "
          f"{len(load.results)} requests during the change, {load.failed} failed")
    assert load.failed == 0, load.errors[:5]
    assert in_proxy <= EFFECT_BOUND_S
    assert in_traffic <= EFFECT_BOUND_S

    split(port, SETTLE_REQUESTS)
    after = split(port, SAMPLE)
    print(f"50/50 split over {SAMPLE} requests: {dict(after)}")
    assert abs(share(after, b) - 50.0) <= TOLERANCE_POINTS, after


def test_websocket_survives_weight_change(gateway_dataplane: GatewayDataplane, backend_pods: BackendPods,
                                          gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    a, b = backend_pods.addresses[:2]
    two_services(cluster, ns, [(a, True)], [(b, True)])
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "ws", "web", [("svc-a", 50), ("svc-b", 50)]))
    port = gateway_port(cluster, ns, "web")
    backend = f"route.{ns}.ws.0"
    wait_until("routes programmed",
               lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == [1, 1])

    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as socket:
        socket.send("before")
        serving, _, text = str(socket.recv(timeout=10)).partition(" ")
        assert text == "before" and serving in (a, b)
        other = b if serving == a else a
        # Take all new traffic away from the backend this socket is on.
        route_weights(cluster, ns, "ws", 0 if serving == a else 100, 100 if serving == a else 0)
        wanted = [0, 1] if serving == a else [1, 0]
        wait_until("weight 0 for the socket's backend",
                   lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == wanted)
        assert split(port, 50) == {other: 50}
        socket.send("after")
        assert socket.recv(timeout=10) == f"{serving} after"


def test_canary_ingress_weight(gateway_dataplane: GatewayDataplane, backend_pods: BackendPods,
                               gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    a, b = backend_pods.addresses[:2]
    two_services(cluster, ns, [(a, True)], [(b, True)])
    apply(cluster, ingress(ns, "app", "svc-a"), ingress(ns, "app-canary", "svc-b", canary_weight=30))
    port = ingress_port(cluster, ns, "app")
    ingress_port(cluster, ns, "app-canary")
    backend = f"ingress.{ns}.app.0.0"
    wait_until("70/30", lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == [7, 3])
    split(port, SETTLE_REQUESTS)
    counts = split(port, SAMPLE)
    print(f"\ncanary-weight 30 over {SAMPLE} requests: {dict(counts)}")
    assert abs(share(counts, b) - 30.0) <= TOLERANCE_POINTS, counts

    with LoadLoop(port) as load:
        cluster.kubectl("annotate", "ingress", "app-canary", "-n", ns, "--overwrite",
                        "nginx.ingress.kubernetes.io/canary-weight=80")
        wait_until("20/80", lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == [1, 4],
                   timeout_s=10)
    assert load.failed == 0, load.errors[:5]
    split(port, SETTLE_REQUESTS)
    counts = split(port, SAMPLE)
    print(f"canary-weight 80 over {SAMPLE} requests: {dict(counts)}")
    assert abs(share(counts, b) - 80.0) <= TOLERANCE_POINTS, counts


def test_not_ready_endpoints_get_no_traffic(gateway_dataplane: GatewayDataplane, backend_pods: BackendPods,
                                            gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    a1, a2, b, a3 = backend_pods.addresses[:4]
    two_services(cluster, ns, [(a1, True), (a2, True)], [(b, True)])
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "nr", "web", [("svc-a", 50), ("svc-b", 50)]))
    port = gateway_port(cluster, ns, "web")
    backend = f"route.{ns}.nr.0"
    # 50/50 over Services, svc-a has two endpoints: each gets 1, svc-b's one gets 2.
    wait_until("weights", lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-a:2", "svc-b:1"])
               == [1, 1, 2])
    assert set(split(port, 40)) == {a1, a2, b}
    worker = gateway_dataplane.proxy.worker_pid()

    with LoadLoop(port) as load:
        time.sleep(0.3)
        # svc-b's only endpoint turns not-ready: svc-b has no ready pod and must get nothing.
        apply(cluster, endpoint_slice(ns, "svc-b", [(b, False)]))
        wait_until("svc-b out of rotation", lambda: gateway_dataplane.proxy.get_weight(backend, "svc-b:1") == 0)
        changed = time.monotonic()
        time.sleep(1.0)
        # A pod of svc-a is replaced (new address) while requests flow.
        apply(cluster, endpoint_slice(ns, "svc-a", [(a1, True), (a3, True)]))
        wait_until("a3 in rotation", lambda: any(r == a3 for _, r in load.results[-50:]), timeout_s=10)
        time.sleep(0.5)
    after_change = [r for t, r in load.results if t > changed + 0.2]
    assert b not in after_change, "traffic reached a Service whose endpoints are all not ready"
    assert load.failed == 0, load.errors[:5]
    assert gateway_dataplane.proxy.worker_pid() == worker, "endpoint changes must not reload HAProxy"

    metrics_before = parse_server_responses(_metrics(gateway_dataplane))
    counts = split(port, 300)
    metrics_after = parse_server_responses(_metrics(gateway_dataplane))
    assert set(counts) == {a1, a3}, counts
    key = (backend, "svc-b:1", "2xx")
    assert metrics_after.get(key) == metrics_before.get(key), "HAProxy counted responses from svc-b"
    assert metrics_after[(backend, "svc-a:1", "2xx")] > metrics_before[(backend, "svc-a:1", "2xx")]


def _metrics(dataplane: GatewayDataplane) -> str:
    import httpx

    ports = json.loads((dataplane.state_dir / "ports.json").read_text())
    return httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=10).text


def test_controller_restart_converges(gateway_dataplane: GatewayDataplane, backend_pods: BackendPods,
                                      gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    a, b = backend_pods.addresses[:2]
    two_services(cluster, ns, [(a, True)], [(b, True)])
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "rs", "web", [("svc-a", 1), ("svc-b", 0)]))
    port = gateway_port(cluster, ns, "web")
    backend = f"route.{ns}.rs.0"
    wait_until("100/0", lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == [1, 0])
    worker = gateway_dataplane.proxy.worker_pid()
    log_mark = gateway_dataplane.log_path.stat().st_size

    gateway_dataplane.crash()
    assert split(port, 20) == {a: 20}, "the data plane must keep serving while its controller is down"
    route_weights(cluster, ns, "rs", 0, 1)  # changed while no controller runs
    gateway_dataplane.start()
    wait_until("0/100 after restart",
               lambda: server_weights(gateway_dataplane, backend, ["svc-a:1", "svc-b:1"]) == [0, 1], timeout_s=30)
    with gateway_dataplane.log_path.open("rb") as log:  # what the controller did since the worker was noted
        log.seek(log_mark)
        since = log.read().decode(errors="replace")[-4000:]
    assert gateway_dataplane.proxy.worker_pid() == worker, \
        f"an adopted HAProxy needs no reload for a weight change; the controller logged since:\n{since}"
    assert split(port, 20) == {b: 20}
    gw = cluster.get_json("gateway", "web", "-n", ns)
    assert condition(gw, "Programmed")["status"] == "True"  # type: ignore[index]


def test_a_service_scaled_to_zero_does_not_stop_the_controller(gateway_dataplane: GatewayDataplane,
                                                               backend_pods: BackendPods, gw_namespace: str) -> None:
    """An EndpointSlice without endpoints (a Deployment scaled to zero: a canary after promotion) is valid; the
    Kubernetes client's models refuse it, so the controller reads raw JSON. Before that fix it stopped
    programming HAProxy, and the next Rollout waited forever for its weight to be confirmed."""
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    a, b = backend_pods.addresses[:2]
    two_services(cluster, ns, [(a, True)], [(b, True)])
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "zero", "web", [("svc-a", 100), ("svc-b", 0)]))
    port = gateway_port(cluster, ns, "web")
    backend = f"route.{ns}.zero.0"
    wait_until("svc-a serving", lambda: gateway_dataplane.proxy.get_weight(backend, "svc-a:1") > 0)
    # A third Service scaled to zero: its EndpointSlice has no endpoints field at all, and it stays that way.
    empty = endpoint_slice(ns, "svc-c", [])
    del empty["endpoints"]  # as the endpoint-slice controller writes it for a Service without pods
    apply(cluster, service(ns, "svc-c"), empty)
    assert cluster.get_json("endpointslice", "svc-c-test", "-n", ns).get("endpoints") is None
    # The controller still reconciles: a new route weight reaches HAProxy, and traffic follows it.
    route_weights(cluster, ns, "zero", 0, 100)
    wait_until("svc-b serving", lambda: gateway_dataplane.proxy.get_weight(backend, "svc-b:1") > 0
               and gateway_dataplane.proxy.get_weight(backend, "svc-a:1") == 0, timeout_s=30)
    assert set(split(port, 20)) == {b}
