"""The local control plane behaves like a small real cluster, checked with the real kubectl."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.controlplane import components as c
from tests.controlplane.cluster import REPO_ROOT, bin_dir
from tests.controlplane.fixtures import ClusterHandle

pytestmark = pytest.mark.cluster

WAIT = "--timeout=90s"


@pytest.fixture
def namespace(local_cluster: ClusterHandle) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for it to go)."""
    name = f"cp-{uuid.uuid4().hex[:8]}"
    local_cluster.kubectl("create", "namespace", name)
    # The ServiceAccount admission plugin refuses pods until the namespace's default SA exists.
    wait_until(lambda: local_cluster.kubectl("get", "serviceaccount", "default", "-n", name,
                                             check=False).returncode == 0, "default ServiceAccount")
    yield name
    local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 90.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)


def apply(cluster: ClusterHandle, manifest: dict[str, Any], namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def job_manifest(name: str, resources: dict[str, Any] | None = None,
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "work", "image": "registry.invalid/senseops/work:1"}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def pod_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/senseops/main:1"}]},
    }


def job_pods(cluster: ClusterHandle, namespace: str, job: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get_json("pods", "-n", namespace, "-l",
                                                   f"job-name={job}")["items"]
    return items


@pytest.mark.parametrize(
    ("binary", "expected"),
    [
        ("kube-apiserver", "Kubernetes {KUBE_VERSION}"),
        ("kube-controller-manager", "Kubernetes {KUBE_VERSION}"),
        ("kube-scheduler", "Kubernetes {KUBE_VERSION}"),
        ("etcd", "etcd Version: {ETCD_VERSION_BARE}"),
        ("kwok", "{KWOK_VERSION_BARE}"),
    ],
)
def test_binary_reports_pinned_version(binary: str, expected: str) -> None:
    versions = c.pinned_versions()
    fields = {**versions, "ETCD_VERSION_BARE": versions["ETCD_VERSION"].lstrip("v"),
              "KWOK_VERSION_BARE": versions["KWOK_VERSION"].lstrip("v")}
    out = subprocess.run([str(bin_dir() / binary), "--version"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert expected.format(**fields) in out.stdout + out.stderr


def test_api_server_reports_pinned_version(local_cluster: ClusterHandle) -> None:
    version = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == c.pinned_versions()["KUBE_VERSION"]


def test_nodes_are_ready_and_gpu_node_advertises_gpus(local_cluster: ClusterHandle) -> None:
    nodes = {n["metadata"]["name"]: n for n in local_cluster.get_json("nodes")["items"]}
    for spec in c.FAKE_NODES:
        assert c.node_is_ready(nodes[spec.name]), f"{spec.name} is not Ready"
    gpu_nodes = local_cluster.get_json("nodes", "-l", f"{c.GPU_LABEL}=true")["items"]
    assert [n["metadata"]["name"] for n in gpu_nodes] == ["kwok-gpu-0"]
    assert gpu_nodes[0]["status"]["allocatable"][c.GPU_RESOURCE] == "2"
    assert c.GPU_RESOURCE not in nodes["kwok-cpu-0"]["status"]["allocatable"]


def test_fake_nodes_hold_leases(local_cluster: ClusterHandle) -> None:
    """kwok renews a Lease per node, as kubelets do, so the node lifecycle controller keeps them Ready."""

    def leases() -> set[str]:
        items = local_cluster.get_json("leases", "-n", "kube-node-lease")["items"]
        return {lease["metadata"]["name"] for lease in items if lease["spec"].get("renewTime")}

    wait_until(lambda: leases() >= {spec.name for spec in c.FAKE_NODES}, "node leases")


def test_default_service_account_can_get_a_token(local_cluster: ClusterHandle, namespace: str) -> None:
    token = local_cluster.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    assert token.count(".") == 2  # a signed JWT: header.payload.signature
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    result = json.loads(local_cluster.kubectl("create", "-o", "json", "-f", "-",
                                              input=json.dumps(review)).stdout)
    assert result["status"]["authenticated"] is True
    assert result["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:default"


def test_pod_becomes_running_and_ready(local_cluster: ClusterHandle, namespace: str) -> None:
    apply(local_cluster, pod_manifest("web"), namespace)
    local_cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/web", WAIT)
    pod = local_cluster.get_json("pod", "web", "-n", namespace)
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] in {spec.name for spec in c.FAKE_NODES}
    assert pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert pod["status"]["podIP"]
    # The ServiceAccount admission plugin mounted the projected API token.
    assert any(v["name"].startswith("kube-api-access-") for v in pod["spec"]["volumes"])


def test_deployment_rolls_out_and_service_gets_endpoints(local_cluster: ClusterHandle,
                                                         namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}},
                         "spec": {"containers": [{"name": "api", "image": "registry.invalid/api:1",
                                                  "ports": [{"containerPort": 8080}]}]}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(local_cluster, deployment, namespace)
    apply(local_cluster, service, namespace)
    local_cluster.kubectl("rollout", "status", "-n", namespace, "deployment/api", WAIT)
    svc = local_cluster.get_json("service", "api", "-n", namespace)
    assert svc["spec"]["clusterIP"].startswith("10.96.")

    def ready_endpoints() -> int:
        slices = local_cluster.get_json("endpointslices", "-n", namespace,
                                        "-l", "kubernetes.io/service-name=api")["items"]
        return sum(1 for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready"))

    wait_until(lambda: ready_endpoints() == 2, "two ready endpoints behind Service api")


def test_job_pod_completes_and_job_is_complete(local_cluster: ClusterHandle, namespace: str) -> None:
    apply(local_cluster, job_manifest("once"), namespace)
    local_cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/once", WAIT)
    job = local_cluster.get_json("job", "once", "-n", namespace)
    assert job["status"]["succeeded"] == 1
    (pod,) = job_pods(local_cluster, namespace, "once")
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"


def test_job_pod_exit_code_annotation_fails_the_job(local_cluster: ClusterHandle, namespace: str) -> None:
    apply(local_cluster, job_manifest("crash", annotations={"kwok.senseops.dev/exit-code": "3"}), namespace)
    local_cluster.kubectl("wait", "-n", namespace, "--for=condition=Failed", "job/crash", WAIT)
    (pod,) = job_pods(local_cluster, namespace, "crash")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_gpu_job_is_scheduled_on_the_gpu_node(local_cluster: ClusterHandle, namespace: str) -> None:
    gpu = {"limits": {c.GPU_RESOURCE: "1"}}
    apply(local_cluster, job_manifest("train", resources=gpu), namespace)
    local_cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/train", WAIT)
    (pod,) = job_pods(local_cluster, namespace, "train")
    assert pod["spec"]["nodeName"] == "kwok-gpu-0"


def test_more_gpus_than_any_node_has_stay_pending(local_cluster: ClusterHandle, namespace: str) -> None:
    apply(local_cluster, job_manifest("greedy", resources={"limits": {c.GPU_RESOURCE: "3"}}), namespace)

    def unschedulable() -> bool:
        pods = job_pods(local_cluster, namespace, "greedy")
        conditions = pods[0]["status"].get("conditions", []) if pods else []
        return any(x["type"] == "PodScheduled" and x.get("reason") == "Unschedulable" for x in conditions)

    wait_until(unschedulable, "the scheduler to report the 3-GPU pod Unschedulable")
    (pod,) = job_pods(local_cluster, namespace, "greedy")
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")


def test_deleting_a_pod_removes_it(local_cluster: ClusterHandle, namespace: str) -> None:
    apply(local_cluster, pod_manifest("doomed"), namespace)
    local_cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/doomed", WAIT)
    local_cluster.kubectl("delete", "-n", namespace, "pod/doomed", "--wait=true", WAIT)
    result = local_cluster.kubectl("get", "-n", namespace, "pod/doomed", check=False)
    assert result.returncode != 0 and "NotFound" in result.stderr


EXTERNAL = pytest.mark.skipif(bool(os.environ.get("SENSEOPS_KUBECONFIG")),
                              reason="the session reuses an external cluster; its launcher state is not ours")


@EXTERNAL
def test_etcd_refuses_clients_without_a_certificate(local_cluster: ClusterHandle) -> None:
    root = local_cluster.kubeconfig.parent
    state = json.loads((root / "state.json").read_text())
    pki = c.Layout(root).pki
    url = f"https://127.0.0.1:{state['ports']['etcd_client']}/health"
    without_cert = ssl.create_default_context(cafile=str(pki.ca_cert))
    with pytest.raises((ssl.SSLError, OSError)):
        urllib.request.urlopen(url, context=without_cert, timeout=5).read()
    with_cert = ssl.create_default_context(cafile=str(pki.ca_cert))
    with_cert.load_cert_chain(str(pki.etcd_client_cert), str(pki.etcd_client_key))
    with urllib.request.urlopen(url, context=with_cert, timeout=5) as resp:
        assert json.loads(resp.read())["health"] == "true"


@EXTERNAL
def test_status_command_sees_the_running_cluster(local_cluster: ClusterHandle) -> None:
    root = local_cluster.kubeconfig.parent
    out = subprocess.run([sys.executable, "-m", "tests.controlplane", "status", "--root", str(root)],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["running"] is True and status["readyz"] is True
    assert set(status["components"]) == set(c.COMPONENT_ORDER)
