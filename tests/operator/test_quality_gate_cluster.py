"""The quality gate on the real control plane: the real operator process (with its ServiceAccount's RBAC), real
runtime pods on the process node, the golden set in MinIO. The stable pods run the trained tiny model; the
candidate ASRModel is the same architecture with random weights. The golden-set probe finds it worse and the
Rollout aborts with QualityGateFailed before any traffic: the HTTPRoute's candidate weight is never above 0.
Then a good candidate (the trained weights) replaces it in spec: the gate passes and the first weight is set."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from senseops_common.storage import StoreConfig, open_store
from senseops_operator.providers.golden import PROBE_SECRET_ENV
from tests.common.environ import environment
from tests.controlplane.fixtures import ClusterHandle
from tests.gateway.conftest import GATEWAY_CLASS, gateway_crds, gateway_dataplane  # noqa: F401 - fixtures
from tests.gateway.helpers import gateway, http_route
from tests.operator.golden import untrained_model_dir, upload_golden_set
from tests.operator.operator_process import OperatorProcess
from tests.operator.test_finetunejob_e2e import operator_kubeconfig
from tests.operator.test_rollout_cluster import kubectl_apply
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.workloads import RUNTIME_SECRET, jwt_secret, runtime_deployment
from tests.servers.minio import MinioServer

pytestmark = [pytest.mark.cluster, pytest.mark.model]
ROOT = Path(__file__).resolve().parents[2]


def asr_model(name: str, artifact: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "senseops.dev/v1alpha1", "kind": "ASRModel", "metadata": {"name": name},
            "spec": {"version": name, "artifact": {"uri": artifact["uri"], "sha256": artifact["sha256"]}}}


@pytest.fixture
def world(local_cluster: ClusterHandle, process_node: ProcessNodeHandle, minio_server: MinioServer,
          gateway_dataplane: Any, tmp_path: Path) -> Iterator[tuple[ClusterHandle, str, str, OperatorProcess]]:  # noqa: F811
    from senseops_trainer.package import upload_model_dir
    from tests.testmodel import ensure_tiny_model

    cluster = local_cluster
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/rollouts.senseops.dev", "--timeout=60s")
    ns, bucket = f"qg-{secrets.token_hex(3)}", f"qg-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", ns)
    minio_server.create_bucket(bucket)
    store_env = minio_server.store_env()
    trained = Path(ensure_tiny_model())
    worse = untrained_model_dir(trained, tmp_path / "untrained")
    with environment(store_env):
        v1 = upload_model_dir(trained, f"s3://{bucket}/", "tiny", "v1")
        v2 = upload_model_dir(worse, f"s3://{bucket}/", "tiny", "v2")
        v3 = upload_model_dir(trained, f"s3://{bucket}/", "tiny", "v3")  # a good candidate: the trained weights
    upload_golden_set(open_store(f"s3://{bucket}/", StoreConfig.from_env(store_env)), "golden/", count=3)
    process_node.mirror(minio_server.port)  # candidate pods download their model from MinIO
    kubeconfig = operator_kubeconfig(cluster, tmp_path / "operator-kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", [ns],
                               {**store_env, PROBE_SECRET_ENV: RUNTIME_SECRET}).start()
    stable = runtime_deployment(ns, trained, name="asr", version="v1", replicas=1, extra_env=store_env)
    kubectl_apply(cluster, ns, jwt_secret(ns), asr_model("v1", v1), asr_model("v2", v2), asr_model("v3", v3),
                  *stable,
                  gateway(ns, "web", GATEWAY_CLASS), http_route(ns, "asr", "web", [("asr", 100)]))
    try:
        yield cluster, ns, bucket, operator
    finally:
        cluster.kubectl("delete", "rollouts,asrmodels", "--all", "-n", ns, "--timeout=60s", check=False)
        operator.stop()
        cluster.kubectl("delete", "deployments,httproutes,gateways", "--all", "-n", ns, "--wait=true",
                        "--timeout=90s", check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_worse_candidate_on_the_golden_set_is_stopped_before_any_traffic(
        world: tuple[ClusterHandle, str, str, OperatorProcess]) -> None:
    cluster, ns, bucket, operator = world
    rollout = {"apiVersion": "senseops.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "ro", "namespace": ns},
               "spec": {"target": {"deployment": "asr", "service": "asr", "port": 80},
                        "stableModel": {"name": "v1"}, "candidateModel": {"name": "v2"},
                        "steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}],
                        "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}},
                        "qualityGate": {"goldenSet": {"uri": f"s3://{bucket}/golden/"}, "metric": "cer",
                                        "maxDegradation": 0.05, "requestTimeoutSeconds": 120},
                        "progressDeadlineSeconds": 600, "abortScaleDownDelaySeconds": 2}}
    kubectl_apply(cluster, ns, rollout)
    weights: set[int] = set()
    status: dict[str, Any] = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        route = cluster.get_json("httproute", "asr", "-n", ns)
        weights |= {r.get("weight", 1) for r in route["spec"]["rules"][0]["backendRefs"] if r["name"] == "ro-canary"}
        status = cluster.get_json("rollout", "ro", "-n", ns).get("status") or {}
        weights.add(status.get("actualWeight") or 0)
        if status.get("phase") == "Aborted":
            break
        time.sleep(0.5)
    print(f"\nabort reason: {status.get('abortReason')}\ncandidate weights seen: {sorted(weights)}")
    assert status.get("phase") == "Aborted", f"{json.dumps(status, indent=1)}\n{operator.log_tail()}"
    assert weights <= {0}, weights  # never any traffic to the worse candidate
    reason = status["abortReason"]
    assert reason.startswith("QualityGateFailed: candidate CER ") and "vs stable CER 0.0000" in reason, reason
    gate = [m for m in status["measurements"] if m["metric"] == "quality-gate"]
    assert gate[-1]["phase"] == "Failed" and gate[-1]["value"] > 0.05
    events = cluster.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=ro")["items"]
    assert any(e["reason"] == "QualityGateFailed" and "stable CER" in e["message"] for e in events)
    metrics = httpx.get(operator.metrics_url, timeout=10).text
    labels = f'metric="cer",namespace="{ns}",rollout="ro",side="stable"'
    assert f"senseops_operator_quality_gate_error_rate{{{labels}}} 0.0" in metrics
    assert f'senseops_operator_quality_gate_probes_total{{namespace="{ns}",phase="Failed",rollout="ro"}} 1.0' in metrics

    # A good candidate (the trained weights again): changing spec restarts cleanly, the gate passes, traffic flows.
    cluster.kubectl("patch", "rollout", "ro", "-n", ns, "--type=merge",
                    "-p", json.dumps({"spec": {"candidateModel": {"name": "v3"}}}))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = cluster.get_json("rollout", "ro", "-n", ns).get("status") or {}
        failed = status.get("candidateModel") == "v3" and status.get("phase") == "Aborted"
        if status.get("actualWeight") == 50 or failed:
            break
        time.sleep(1)
    assert status.get("actualWeight") == 50, f"{json.dumps(status, indent=1)}\n{operator.log_tail()}"
    gate = [m for m in status["measurements"] if m["metric"] == "quality-gate"]
    assert gate and gate[0]["phase"] == "Successful" and gate[0]["value"] == 0.0, gate
