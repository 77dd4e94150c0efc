"""Scale-out that follows load, on the local cluster (issue 13 item 4). Marker ``autoscale``: `make test-autoscale`.

Real parts: the control plane with the aggregation layer, KEDA's operator and metrics API server built from
KEDA's Go module and running as pods on the process node, a real Prometheus scraping the runtime pods, the
HPA controller of kube-controller-manager, runtime pods serving the tiny model, and HAProxy programmed from an
HTTPRoute by the Gateway stand-in. The ScaledObject is the repository's (manifests/overlays/autoscale) with
test-sized numbers: 1–3 replicas, 2 streams per pod, a 20 s scale-down window.

Speakers stream espeak-ng sentences at real time through the gateway. Load up: six speakers, started one by
one → KEDA's HPA adds replicas (new streams land on the new pods). Load down: four stop → the HPA removes pods;
the pods that go are those holding the remaining streams (pod-deletion-cost keeps an idle one), so every
remaining stream is drained: finals of what was said, 1012, the client resumes on the surviving pod. At the
end every sentence sent has exactly one final and the streams closed only with 1012 (drains) and 1000 (their
own end). Final-latency p95 (from Prometheus) is printed for each phase, not asserted (a 2-core shared box).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from senseops_runtime.client import StreamOutcome, pcm_frames, stream_pcm_resilient
from tests.autoscale.keda_local import (
    KEDA_NS,
    certificate_secret,
    cluster_setup,
    keda_certificates,
    metrics_apiserver_for_process_node,
    operator_for_process_node,
)
from tests.autoscale.manifests import AUTOSCALE_ENTRY, KEDA_ENTRY, find, keda_crds, render
from tests.common.waiting import wait_until
from tests.controlplane.fixtures import ClusterHandle
from tests.gateway.conftest import (  # noqa: F401 - fixtures
    GATEWAY_CLASS,
    GatewayDataplane,
    gateway_crds,
    gateway_dataplane,
    gw_namespace,
)
from tests.gateway.helpers import apply, gateway, gateway_port, http_route
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.workloads import jwt_secret, ready_endpoints, runtime_deployment, runtime_token
from tests.runtime.helpers import ENGLISH, utterance_pcm
from tests.servers.prometheus import PrometheusServer

pytestmark = [pytest.mark.cluster, pytest.mark.autoscale]
NAME = "senseops-runtime"
READY_TIMEOUT_S = 400.0
SCALE_TIMEOUT_S = 300.0
SPEAKERS_UP = 6
SPEAKERS_KEPT = 2
DRAIN_ENV = {"SENSEOPS_DRAIN_TIMEOUT_S": "8", "SENSEOPS_DRAIN_SEGMENT_GRACE_S": "4", "SENSEOPS_WARMUP": "true"}
SENTENCE = pcm_frames(utterance_pcm(ENGLISH, before_s=0.6, after_s=1.2), 100)


def token(subject: str) -> str:
    return runtime_token(subject)


@dataclass
class Speaker:
    """One client on one stream for its whole life, resumed across reconnects."""

    name: str
    stop: threading.Event = field(default_factory=threading.Event)
    outcome: StreamOutcome | None = None
    sent: int = 0
    closes: list[tuple[int | None, str]] = field(default_factory=list)
    finals_heard: int = 0

    async def sentences(self) -> AsyncIterator[bytes]:
        while not self.stop.is_set():
            for frame in SENTENCE:
                yield frame
            self.sent += 1

    def _heard(self, _: dict[str, Any]) -> None:
        self.finals_heard += 1

    async def run(self, url: str) -> None:
        self.outcome = await stream_pcm_resilient(
            url, self.sentences(), token=token(self.name), options={"itn": False}, realtime=True,
            max_reconnects=30, on_final=self._heard, on_close=lambda code, reason: self.closes.append((code, reason)))


def pod_streams(ip: str) -> float:
    with urllib.request.urlopen(f"http://{ip}:8000/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("senseops_active_streams "):
                return float(line.split()[1])
    return 0.0


def runtime_pods(cluster: ClusterHandle, ns: str) -> list[dict[str, Any]]:
    pods = cluster.get_json("pods", "-n", ns, "-l", f"app.kubernetes.io/name={NAME}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def replicas(cluster: ClusterHandle, ns: str) -> int:
    return int(cluster.get_json("deployment", NAME, "-n", ns)["spec"].get("replicas") or 0)


def scaled_object(ns: str, prometheus_url: str) -> dict[str, Any]:
    """The repository's ScaledObject, sized for the test and pointed at the test's Prometheus."""
    obj = copy.deepcopy(find(render(AUTOSCALE_ENTRY), "ScaledObject", NAME))
    obj["metadata"]["namespace"] = ns
    spec = obj["spec"]
    spec.update({"minReplicaCount": 1, "maxReplicaCount": 3, "pollingInterval": 5})
    spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] = {
        "stabilizationWindowSeconds": 20, "selectPolicy": "Min",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 10}]}
    for trigger in spec["triggers"]:
        meta = trigger["metadata"]
        meta["serverAddress"] = prometheus_url
        meta["query"] = meta["query"].replace('namespace="senseops"', f'namespace="{ns}"')
        if trigger["name"] == "streams":
            meta["threshold"] = "2"
    return obj


def final_p95(prometheus: PrometheusServer, ns: str, window: str) -> float | None:
    result = prometheus.query(
        f'histogram_quantile(0.95, sum by (le) (rate(senseops_final_latency_seconds_bucket{{namespace="{ns}"}}'
        f"[{window}])))")
    values = [float(r["value"][1]) for r in result]
    return values[0] if values and values[0] == values[0] else None


def install_keda(cluster: ClusterHandle, tmp_path: Path) -> None:
    objects = render(KEDA_ENTRY)
    crds = keda_crds()
    # Server-side: KEDA's CRDs are too big for the last-applied annotation of a client-side apply.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": crds}))
    for crd in crds:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")
    certs = keda_certificates()
    apply(cluster, *cluster_setup(objects))
    apply(cluster, certificate_secret(certs), *operator_for_process_node(objects))
    operator_ip = wait_until("the KEDA operator ready", lambda: next(iter(
        ready_endpoints(cluster, KEDA_NS, "keda-operator")), None), timeout_s=180, interval_s=2)
    apply(cluster, *metrics_apiserver_for_process_node(objects, operator_ip, certs["ca.crt"]))

    def external_metrics_available() -> bool | None:
        status = cluster.get_json("apiservice", "v1beta1.external.metrics.k8s.io").get("status") or {}
        return any(c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions", [])) or None

    wait_until("external.metrics.k8s.io served by KEDA", external_metrics_available, timeout_s=180, interval_s=2)


def uninstall_keda(cluster: ClusterHandle) -> None:
    # The APIService first: an unavailable aggregated API makes every kubectl discovery warn.
    cluster.kubectl("delete", "apiservice", "v1beta1.external.metrics.k8s.io", "--ignore-not-found", check=False)
    cluster.kubectl("delete", "namespace", KEDA_NS, "--ignore-not-found", "--wait=true", "--timeout=90s",
                    check=False)
    for obj in cluster_setup(render(KEDA_ENTRY)):
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            cluster.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found", check=False)
    cluster.kubectl("delete", "rolebinding", "-n", "kube-system", "keda-metrics-apiserver-auth-reader",
                    "--ignore-not-found", check=False)


def test_replicas_follow_load_and_no_stream_is_cut(
        gateway_dataplane: GatewayDataplane, process_node: ProcessNodeHandle, gw_namespace: str,  # noqa: F811
        prometheus_server: PrometheusServer, tmp_path: Path) -> None:
    from tests.testmodel import ensure_tiny_model

    cluster, ns = gateway_dataplane.cluster, gw_namespace
    process_node.mirror(int(prometheus_server.url.rsplit(":", 1)[1]))  # KEDA's operator queries it from its pod
    model_dir = Path(ensure_tiny_model())
    deployment, service = runtime_deployment(ns, model_dir, name=NAME, replicas=1, extra_env=DRAIN_ENV)
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    speakers: list[Speaker] = []
    running: list[concurrent.futures.Future[None]] = []
    phases: list[str] = []
    seen_replicas = [1]
    try:
        install_keda(cluster, tmp_path)
        apply(cluster, jwt_secret(ns), deployment, service, gateway(ns, "web", GATEWAY_CLASS),
              http_route(ns, NAME, "web", [(NAME, 80)]))
        wait_until("the first runtime pod ready", lambda: len(ready_endpoints(cluster, ns, NAME)) == 1 or None,
                   timeout_s=READY_TIMEOUT_S, interval_s=2)
        url = f"ws://127.0.0.1:{gateway_port(cluster, ns, 'web')}/ws/stream"
        apply(cluster, scaled_object(ns, prometheus_server.url))
        hpa = wait_until("KEDA's HPA", lambda: cluster.get_json("hpa", "-n", ns)["items"] or None, timeout_s=120)
        assert hpa[0]["spec"]["scaleTargetRef"]["name"] == NAME

        def start_speaking() -> Speaker:
            speaker = Speaker(f"spk{len(speakers)}-{secrets.token_hex(2)}")
            speakers.append(speaker)
            running.append(asyncio.run_coroutine_threadsafe(speaker.run(url), loop))
            wait_until(f"a final for {speaker.name}", lambda: speaker.finals_heard or None, timeout_s=120,
                       interval_s=0.5)
            return speaker

        # --- load up: one speaker at a time; each new stream goes to the pods ready by then (round robin)
        for _ in range(SPEAKERS_UP):
            start_speaking()
            seen_replicas.append(replicas(cluster, ns))
        phases.append(f"1 replica → load of {SPEAKERS_UP} streams: final p95 {final_p95(prometheus_server, ns, '1m')}")

        def scaled_to(n: int) -> bool | None:
            seen_replicas.append(replicas(cluster, ns))
            return (seen_replicas[-1] == n and len(ready_endpoints(cluster, ns, NAME)) == n) or None

        wait_until("3 replicas ready", lambda: scaled_to(3), timeout_s=SCALE_TIMEOUT_S, interval_s=2)
        time.sleep(20)  # sentences on the scaled-out set
        phases.append(f"3 replicas: final p95 (last 20 s) {final_p95(prometheus_server, ns, '20s')}")

        # --- load down: most speakers stop; the remaining streams sit on pods that will go
        for speaker in speakers[:SPEAKERS_UP - SPEAKERS_KEPT]:
            speaker.stop.set()
        wait_until("the stopped streams closed", lambda: sum(
            pod_streams(ip) for ip in ready_endpoints(cluster, ns, NAME)) == SPEAKERS_KEPT or None,
            timeout_s=60, interval_s=1)
        idle = [p for p in runtime_pods(cluster, ns) if pod_streams(p["status"]["podIP"]) == 0]
        assert idle, "with 2 streams on 3 pods one pod is idle"
        # The ReplicaSet removes the cheapest pods first: keep the idle one, so every remaining stream is drained.
        cluster.kubectl("annotate", "pod", "-n", ns, idle[0]["metadata"]["name"],
                        "controller.kubernetes.io/pod-deletion-cost=1000", "--overwrite")
        drain_from = sum(1 for s in speakers for c, _ in s.closes if c == 1012)
        wait_until("1 replica left", lambda: (scaled_to(1) and len(runtime_pods(cluster, ns)) == 1) or None,
                   timeout_s=SCALE_TIMEOUT_S, interval_s=2)
        kept = speakers[SPEAKERS_UP - SPEAKERS_KEPT:]
        wait_until("the kept speakers resumed", lambda: pod_streams(
            runtime_pods(cluster, ns)[0]["status"]["podIP"]) == SPEAKERS_KEPT or None, timeout_s=90, interval_s=1)
        heard = [s.finals_heard for s in kept]
        wait_until("finals after the scale-in", lambda: all(
            s.finals_heard > h for s, h in zip(kept, heard, strict=True)) or None, timeout_s=60, interval_s=0.5)
        drained = sum(1 for s in speakers for c, _ in s.closes if c == 1012) - drain_from
        phases.append(f"scale-in to 1: {drained} streams drained (1012) and resumed")
    finally:
        for speaker in speakers:
            speaker.stop.set()
        done, _ = concurrent.futures.wait(running, timeout=90)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        cluster.kubectl("delete", "scaledobjects.keda.sh", "--all", "-n", ns, "--timeout=60s", check=False)
        cluster.kubectl("delete", "deployments", "--all", "-n", ns, "--timeout=60s", check=False)
        uninstall_keda(cluster)

    print("\n" + "\n".join(phases) + f"\nreplicas seen: {sorted(set(seen_replicas))}")
    assert len(done) == len(running), "the speakers did not finish"
    for future in done:
        future.result()
    for s in speakers:
        assert s.outcome is not None
        # none cut: the stream ends by its own eof (1000); on the way only drains (1012) closed it (or, on a
        # starved machine, a missed keepalive pong, which resumes the same way)
        assert s.outcome.close_codes and s.outcome.close_codes[-1] == 1000, (s.name, s.closes)
        unexpected = [(c, r) for c, r in s.closes if c not in (1000, 1012) and "keepalive" not in r]
        assert not unexpected, (s.name, s.closes)
        texts = [str(m["final"]) for _, m in s.outcome.finals]
        assert len(texts) == s.sent and all(texts), (s.name, s.sent, texts)  # one final per sentence
        wrong = [t for t in texts if t != ENGLISH.text]
        assert len(wrong) <= max(3, s.sent // 10), (s.name, s.sent, wrong)
    assert max(seen_replicas) == 3 and seen_replicas[-1] == 1
    assert drained >= SPEAKERS_KEPT, "the kept streams sat on the removed pods; each must have been drained"
