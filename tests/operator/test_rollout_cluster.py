"""The Rollout handler on the real control plane: the real operator process, the Gateway API stand-in
(a controller that accepts HTTPRoutes and programs HAProxy) and kwok pods that turn Ready.

A candidate goes 5 → 50 → 100 and is promoted: the HTTPRoute weights are what the operator applied and the
gateway controller accepted; the stable Deployment moves to the candidate model (only the model fields,
under the field manager senseops-operator); the candidate is scaled down afterwards. No traffic is sent
here: the traffic split through the proxy is measured by the gateway's own tests.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from senseops_common.storage import StoreConfig, local_directory_manifest, open_store
from tests.gateway.conftest import GATEWAY_CLASS, gateway_crds, gateway_dataplane  # noqa: F401 - fixtures
from tests.gateway.helpers import gateway, http_route
from tests.operator.cases import asr_model
from tests.operator.operator_process import OperatorProcess
from tests.operator.test_rollout_providers import exporter, prometheus  # noqa: F401 - fixtures
from tests.servers.prometheus import PrometheusServer

pytestmark = [pytest.mark.cluster]
LABELS = {"app.kubernetes.io/name": "senseops-runtime", "app.kubernetes.io/instance": "asr"}


def target(ns: str) -> list[dict[str, Any]]:
    labels = {**LABELS, "app.kubernetes.io/version": "v1"}
    container = {"name": "runtime", "image": "senseops/runtime:test",
                 "ports": [{"name": "http", "containerPort": 8000}],
                 "env": [{"name": "SENSEOPS_MODEL_URI", "value": "s3://x/v1/"},
                         {"name": "SENSEOPS_MODEL_VERSION", "value": "v1"}, {"name": "SENSEOPS_THREADS", "value": "1"}]}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "asr", "namespace": ns},
         "spec": {"replicas": 4, "selector": {"matchLabels": LABELS},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "asr", "namespace": ns},
         "spec": {"selector": LABELS, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    ]


@pytest.fixture
def setup(local_cluster, minio_server, gateway_dataplane, tmp_path: Path) -> Iterator[tuple[Any, str, OperatorProcess]]:  # type: ignore[no-untyped-def]  # noqa: F811
    cluster = local_cluster
    cluster.kubectl("apply", "--server-side", "-k", str(Path(__file__).resolve().parents[2] / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/rollouts.senseops.dev", "--timeout=60s")
    ns = f"ro-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", ns)
    bucket = f"ro-{secrets.token_hex(3)}"
    minio_server.create_bucket(bucket)
    store = open_store(f"s3://{bucket}/", StoreConfig.from_env(minio_server.store_env()))
    models = []
    for version in ("v1", "v2"):
        d = tmp_path / version
        d.mkdir()
        (d / "model.pt").write_bytes(secrets.token_bytes(256))
        _, digest, _ = local_directory_manifest(d)
        store.put(f"models/{version}/model.pt", (d / "model.pt").read_bytes())
        m = asr_model(version)
        m["spec"]["artifact"] = {"uri": f"s3://{bucket}/models/{version}/", "sha256": digest, "format": "funasr"}
        models.append(m)
    operator = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log", [ns], minio_server.store_env()).start()
    kubectl_apply(cluster, ns, *models, *target(ns), gateway(ns, "web", GATEWAY_CLASS),
                  http_route(ns, "asr", "web", [("asr", 100)]))
    try:
        yield cluster, ns, operator
    finally:
        cluster.kubectl("delete", "asr", "--all", "-n", ns, "--timeout=60s", check=False)
        operator.stop()
        cluster.kubectl("delete", "httproutes,gateways", "--all", "-n", ns, "--wait=true", "--timeout=60s",
                        check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def kubectl_apply(cluster: Any, ns: str, *objs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                    "items": list(objs)}))


def rollout_manifest(ns: str) -> dict[str, Any]:
    return {"apiVersion": "senseops.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "ro", "namespace": ns},
            "spec": {"target": {"deployment": "asr", "service": "asr", "port": 80},
                     "stableModel": {"name": "v1"}, "candidateModel": {"name": "v2"},
                     "steps": [{"setWeight": 5}, {"pause": {"durationSeconds": 2}}, {"setWeight": 50},
                               {"pause": {"durationSeconds": 2}}, {"setWeight": 100}],
                     "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}},
                     "progressDeadlineSeconds": 120, "scaleDownDelaySeconds": 2}}


def watch(cluster: Any, ns: str, until: Any, timeout_s: float = 240) -> tuple[dict[str, Any], list[int]]:
    """Poll the Rollout until `until(status)`; return its last status and the confirmed weights seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = cluster.get_json("rollout", "ro", "-n", ns).get("status") or {}
        weight = status.get("actualWeight")
        if weight is not None and (not seen or seen[-1] != weight):
            seen.append(weight)
        if until(status):
            break
        time.sleep(0.3)
    return status, seen


def test_good_candidate_goes_5_50_100_and_is_promoted(setup: tuple[Any, str, OperatorProcess]) -> None:
    cluster, ns, operator = setup
    kubectl_apply(cluster, ns, rollout_manifest(ns))
    status, seen = watch(cluster, ns, lambda s: s.get("outcome") == "Promoted")
    print(f"\nconfirmed weights seen: {seen}")
    assert status.get("outcome") == "Promoted", f"{json.dumps(status, indent=1)}\n{operator.log_tail()}"
    assert status["phase"] == "Healthy" and status["stableModel"] == "v2" and status["previousStableModel"] == "v1"
    # every step's weight was confirmed in order (polling may miss a short-lived value, never reorder them)
    assert [w for w in seen if w in (5, 50, 100)] == sorted({w for w in seen if w in (5, 50, 100)})
    assert 100 in seen and seen[-1] == 0

    route = cluster.get_json("httproute", "asr", "-n", ns)
    refs = {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}
    assert refs == {"asr": 100, "ro-canary": 0}
    stable = cluster.get_json("deployment", "asr", "-n", ns, "--show-managed-fields")
    template = stable["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/version"] == "v2"
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env["SENSEOPS_MODEL_VERSION"] == "v2" and env["SENSEOPS_THREADS"] == "1"  # Git's other fields kept
    managers = {m["manager"] for m in stable["metadata"]["managedFields"]}
    assert "senseops-operator" in managers
    owned = next(m for m in stable["metadata"]["managedFields"] if m["manager"] == "senseops-operator")
    assert "SENSEOPS_THREADS" not in json.dumps(owned["fieldsV1"])  # the operator owns only the model fields

    def scaled_down() -> bool:
        return cluster.get_json("deployment", "ro-canary", "-n", ns)["spec"]["replicas"] == 0

    deadline = time.monotonic() + 60
    while not scaled_down() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert scaled_down()
    events = cluster.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=ro")["items"]
    reasons = {e["reason"] for e in events}
    assert {"RolloutStarted", "StepCompleted", "Promoted"} <= reasons, reasons


def test_failing_analysis_aborts_then_retry_from_status_promotes(
        setup: tuple[Any, str, OperatorProcess], prometheus: PrometheusServer, exporter: Any) -> None:  # noqa: F811
    cluster, ns, operator = setup
    gauge = exporter[1]
    gauge.set(0.01)
    manifest = rollout_manifest(ns)
    manifest["spec"]["steps"] = [{"setWeight": 5}, {"pause": {"durationSeconds": 30}}, {"setWeight": 100}]
    manifest["spec"]["abortScaleDownDelaySeconds"] = 2
    query = 'max(senseops_probe_value{app_kubernetes_io_version="{{candidate}}"})'
    manifest["spec"]["analysis"] = {"metrics": [{
        "name": "probe", "successMax": 0.05, "intervalSeconds": 10,
        "provider": {"prometheus": {"address": prometheus.url, "query": query}}}]}
    kubectl_apply(cluster, ns, manifest)
    status, _ = watch(cluster, ns, lambda s: s.get("actualWeight") == 5 and s.get("measurements"))
    assert status["measurements"][-1]["phase"] == "Successful", status
    gauge.set(0.5)  # the candidate regresses
    breach = time.monotonic()
    status, seen = watch(cluster, ns, lambda s: s.get("actualWeight") == 0 and s.get("abort"), timeout_s=60)
    took = time.monotonic() - breach
    print(f"\nweight back to 0 {took:.1f} s after the breach; weights seen {seen}")
    assert status.get("phase") == "Aborted" and status.get("actualWeight") == 0, f"{status}\n{operator.log_tail()}"
    reason = status["abortReason"]
    assert "0.5" in reason and "<= 0.05" in reason and 'app_kubernetes_io_version="v2"' in reason
    events = cluster.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=ro")["items"]
    assert any(e["reason"] == "AnalysisAbort" and "0.5" in e["message"] for e in events)
    watch(cluster, ns, lambda s: s.get("outcome") == "RolledBack", timeout_s=30)
    deadline = time.monotonic() + 30
    while cluster.get_json("deployment", "ro-canary", "-n", ns)["spec"]["replicas"] != 0:
        assert time.monotonic() < deadline, "candidate not scaled down after abortScaleDownDelaySeconds"
        time.sleep(0.5)

    # retry through status (as the CLI does): spec untouched, the rollout starts again and finishes
    spec_before = cluster.get_json("rollout", "ro", "-n", ns)["spec"]
    gauge.set(0.0)
    cluster.kubectl("patch", "rollout", "ro", "-n", ns, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"retry": True}}))
    status, seen = watch(cluster, ns, lambda s: s.get("outcome") == "Promoted", timeout_s=180)
    assert status.get("outcome") == "Promoted", f"{status}\n{operator.log_tail()}"
    assert cluster.get_json("rollout", "ro", "-n", ns)["spec"] == spec_before


def test_initial_delay_holds_the_first_measurement_after_the_weight_rises(
        setup: tuple[Any, str, OperatorProcess], prometheus: PrometheusServer, exporter: Any) -> None:  # noqa: F811
    # Real operator and Prometheus: at 5 % (the 25 s pause) the metric is first measured 12 s after the step
    # started, not at once, and the rollout then promotes.
    cluster, ns, operator = setup
    exporter[1].set(0.0)
    manifest = rollout_manifest(ns)
    manifest["spec"]["steps"] = [{"setWeight": 5}, {"pause": {"durationSeconds": 25}}, {"setWeight": 100}]
    query = 'max(senseops_probe_value{app_kubernetes_io_version="{{candidate}}"})'
    manifest["spec"]["analysis"] = {"metrics": [{
        "name": "probe", "successMax": 0.05, "intervalSeconds": 10, "initialDelaySeconds": 12,
        "provider": {"prometheus": {"address": prometheus.url, "query": query}}}]}
    kubectl_apply(cluster, ns, manifest)
    status, _ = watch(cluster, ns, lambda s: bool(s.get("measurements")), timeout_s=120)
    assert status.get("currentStepIndex") == 1 and status.get("actualWeight") == 5, status
    first = datetime.fromisoformat(status["measurements"][0]["at"])
    step_started = datetime.fromisoformat(status["stepStartedAt"])
    assert (first - step_started).total_seconds() >= 12, (first, step_started)
    status, _ = watch(cluster, ns, lambda s: s.get("outcome") == "Promoted", timeout_s=180)
    assert status.get("outcome") == "Promoted", f"{status}\n{operator.log_tail()}"
    assert all(m["phase"] == "Successful" for m in status["measurements"]), status["measurements"]


def test_prometheus_down_pauses_and_operator_restart_keeps_the_step(
        setup: tuple[Any, str, OperatorProcess], prometheus: PrometheusServer, exporter: Any) -> None:  # noqa: F811
    cluster, ns, operator = setup
    exporter[1].set(0.0)
    manifest = rollout_manifest(ns)
    manifest["spec"]["steps"] = [{"setWeight": 5}, {"pause": {"durationSeconds": 15}}, {"setWeight": 50},
                                 {"pause": {"durationSeconds": 5}}, {"setWeight": 100}]
    query = 'max(senseops_probe_value{app_kubernetes_io_version="{{candidate}}"})'
    manifest["spec"]["analysis"] = {"metrics": [{
        "name": "probe", "successMax": 0.05, "intervalSeconds": 10, "consecutiveErrorLimit": 1,
        "inconclusiveLimit": 3, "provider": {"prometheus": {"address": prometheus.url, "query": query}}}]}
    kubectl_apply(cluster, ns, manifest)
    watch(cluster, ns, lambda s: s.get("actualWeight") == 5 and s.get("measurements"))
    prometheus.stop()
    try:
        status, _ = watch(cluster, ns, lambda s: any(p["reason"] == "ProviderErrors"
                                                     for p in s.get("pauseConditions") or []), timeout_s=60)
        assert status.get("phase") == "Paused", f"{status}\n{operator.log_tail()}"
        step = status["currentStepIndex"]
        time.sleep(20)  # the 15 s pause is long over: a blind rollout must not advance
        status = cluster.get_json("rollout", "ro", "-n", ns)["status"]
        assert status["currentStepIndex"] == step and status["actualWeight"] == 5, status
        operator.stop()
        operator.start()
        time.sleep(3)
        status = cluster.get_json("rollout", "ro", "-n", ns)["status"]
        assert status["currentStepIndex"] == step and status["actualWeight"] == 5, status
    finally:
        prometheus.start()
    status, seen = watch(cluster, ns, lambda s: s.get("outcome") == "Promoted", timeout_s=180)
    assert status.get("outcome") == "Promoted", f"{status}\n{operator.log_tail()}"
    assert seen == [5, 50, 100, 0], seen  # no jump, nothing repeated
    events = cluster.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=ro")["items"]
    assert any(e["reason"] == "Resumed" and "ProviderErrors" in e["message"] for e in events)
    text = httpx.get(operator.metrics_url, timeout=5).text
    assert f'senseops_rollout_phase{{namespace="{ns}",phase="Healthy",rollout="ro"}} 1.0' in text
