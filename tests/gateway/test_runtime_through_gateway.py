"""Real runtime pods (on the process node) behind the real proxy (HAProxy, programmed by the Gateway
controller stand-in from an HTTPRoute): requests reach every replica, a pod deletion under load costs at
most the request in flight, and the desktop app's WebSocket stream gets its final transcript through the
gateway even while the route's weights change."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from senseops_runtime.client import pcm_frames, stream_pcm
from tests.gateway.conftest import GatewayDataplane
from tests.gateway.helpers import LoadLoop, apply, gateway, gateway_port, http_route, wait_until
from tests.gateway.test_gateway_cluster import GATEWAY_CLASS, route_weights
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.workloads import jwt_secret, ready_endpoints, runtime_deployment, runtime_token
from tests.runtime.helpers import ENGLISH, utterance_pcm

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
READY_TIMEOUT_S = 400.0


def token(subject: str) -> str:
    return runtime_token(subject, ("stream", "transcribe"), ttl_s=600)


def health_requests(ip: str) -> float:
    """The pod's own count of answered /api/health requests (from its /metrics, read directly)."""
    with urllib.request.urlopen(f"http://{ip}:8000/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("senseops_http_requests_total") and 'route="/api/health"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def deploy(dataplane: GatewayDataplane, ns: str, name: str, replicas: int) -> set[str]:
    from tests.testmodel import ensure_tiny_model

    cluster = dataplane.cluster
    for obj in runtime_deployment(ns, Path(ensure_tiny_model()), name=name, replicas=replicas):
        apply(cluster, obj)
    return wait_until(f"{replicas} ready {name} pods",
                      lambda: (found if len(found := ready_endpoints(cluster, ns, name)) == replicas else None),
                      timeout_s=READY_TIMEOUT_S, interval_s=2)


def test_runtime_replicas_behind_the_gateway_survive_a_pod_deletion(
        gateway_dataplane: GatewayDataplane, process_node: ProcessNodeHandle, gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    apply(cluster, jwt_secret(ns))
    ips = deploy(gateway_dataplane, ns, "rt", 2)
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "asr", "web", [("rt", 100)]))
    port = gateway_port(cluster, ns, "web")
    before = {ip: health_requests(ip) for ip in ips}

    def both_answered() -> bool:
        _get(port, 20)
        return all(health_requests(ip) > before[ip] for ip in ips)

    wait_until("both replicas answer through the proxy", both_answered, timeout_s=30)
    counts = {ip: health_requests(ip) - before[ip] for ip in ips}
    print(f"\nrequests through the gateway per replica: {counts}")

    victim = sorted(ips)[0]
    pods = cluster.get_json("pods", "-n", ns, "-l", "app.kubernetes.io/instance=rt")["items"]
    victim_pod = next(p["metadata"]["name"] for p in pods if p["status"].get("podIP") == victim)
    with LoadLoop(port, path="/api/health") as load:
        time.sleep(1)
        cluster.kubectl("delete", "pod", victim_pod, "-n", ns, "--wait=false")
        wait_until("a replacement replica ready", lambda: (
            len(found := ready_endpoints(cluster, ns, "rt")) == 2 and victim not in found) or None,
            timeout_s=READY_TIMEOUT_S, interval_s=1)
        replacement = next(iter(ready_endpoints(cluster, ns, "rt") - ips))
        start = health_requests(replacement)
        wait_until("the replacement serves through the proxy", lambda: health_requests(replacement) > start or None,
                   timeout_s=30, interval_s=0.5)
    print(f"pod deletion through the gateway: {load.failed} failed of {len(load.results)} requests "
          f"(errors: {load.errors[:3]})")
    # The load loop has one request in flight at a time: at most that one may be lost with the killed pod.
    assert load.failed <= 1, load.errors[:5]


def _get(port: int, count: int) -> bool:
    for _ in range(count):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as resp:
            assert resp.status == 200
    return True


def test_websocket_stream_through_the_gateway_survives_weight_changes(
        gateway_dataplane: GatewayDataplane, process_node: ProcessNodeHandle, gw_namespace: str) -> None:
    cluster, ns = gateway_dataplane.cluster, gw_namespace
    apply(cluster, jwt_secret(ns))
    deploy(gateway_dataplane, ns, "rt-a", 1)
    deploy(gateway_dataplane, ns, "rt-b", 1)
    apply(cluster, gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "asr", "web", [("rt-a", 50), ("rt-b", 50)]))
    port = gateway_port(cluster, ns, "web")
    # The Gateway is Programmed before the stand-in has put the route in HAProxy's config: 404 until then.
    wait_until("the route serving through the gateway", lambda: _get(port, 2), timeout_s=60, interval_s=0.5)

    changed = threading.Event()

    def shift_weights() -> None:
        time.sleep(1.0)  # the stream is open and sending by now
        route_weights(cluster, ns, "asr", 100, 0)
        time.sleep(0.5)
        route_weights(cluster, ns, "asr", 0, 100)
        changed.set()

    shifter = threading.Thread(target=shift_weights)
    shifter.start()
    pcm = utterance_pcm(ENGLISH, before_s=1.0, after_s=2.5)  # long enough to span both changes
    outcome = asyncio.run(stream_pcm(f"ws://127.0.0.1:{port}/ws/stream", pcm_frames(pcm, 100),
                                     token=token("gw-stream"), realtime=True, options={"itn": False}))
    shifter.join()
    assert changed.is_set()
    assert outcome.close_code in (1000, None), (outcome.close_code, outcome.close_reason)
    assert re.sub(r"\W", "", outcome.final_text.lower()) == re.sub(r"\W", "", ENGLISH.text.lower()), outcome.finals
