"""The process node (kubelet stand-in) on the real control plane: Jobs with real exit codes, volumes,
environment, service-account tokens, probes, restarts, deletion, and a Deployment of real runtime pods
behind a Service's EndpointSlices."""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.common.waiting import wait_until
from tests.controlplane.fixtures import ClusterHandle
from tests.procnode.fixtures import PLACEMENT
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.workloads import RUNTIME_SECRET, ready_endpoints, runtime_deployment

pytestmark = pytest.mark.cluster


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 0.5) -> Any:
    """:func:`wait_until` at a pace that suits kubectl probes."""
    return wait_until(what, check, timeout_s, interval_s)


@pytest.fixture
def ns(local_cluster: ClusterHandle) -> str:
    name = "pn-" + secrets.token_hex(3)
    local_cluster.kubectl("create", "namespace", name)
    return name


def apply(cluster: ClusterHandle, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def job(name: str, ns: str, script: str, backoff_limit: int = 0, **pod_extra: Any) -> dict[str, Any]:
    pod_spec = {
        **PLACEMENT,
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script],
                        "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        **pod_extra,
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {"backoffLimit": backoff_limit, "template": {"spec": pod_spec}}}


def job_condition(cluster: ClusterHandle, ns: str, name: str) -> dict[str, Any] | None:
    status = cluster.get_json("job", name, "-n", ns).get("status", {})
    for cond in status.get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return dict(cond)
    return None


def job_pods(cluster: ClusterHandle, ns: str, name: str) -> list[dict[str, Any]]:
    return list(cluster.get_json("pods", "-n", ns, "-l", f"job-name={name}")["items"])


def test_gpu_job_runs_on_the_process_node_and_completes(local_cluster: ClusterHandle,
                                                        process_node: ProcessNodeHandle, ns: str) -> None:
    apply(local_cluster, job("ok", ns, "echo trained; exit 0"))
    cond = wait_for("Job ok to finish", lambda: job_condition(local_cluster, ns, "ok"), 90)
    assert cond["type"] == "Complete"
    (pod,) = job_pods(local_cluster, ns, "ok")
    assert pod["spec"]["nodeName"] == process_node.name
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert pod["status"]["podIP"].startswith("198.18.")


def test_exit_code_matched_by_pod_failure_policy_fails_the_job(local_cluster: ClusterHandle,
                                                               process_node: ProcessNodeHandle, ns: str) -> None:
    manifest = job("gate", ns, "exit 42", backoff_limit=3)
    manifest["spec"]["podFailurePolicy"] = {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]}
    apply(local_cluster, manifest)
    cond = wait_for("Job gate to fail", lambda: job_condition(local_cluster, ns, "gate"), 90)
    assert (cond["type"], cond["reason"]) == ("Failed", "PodFailurePolicy")
    pods = job_pods(local_cluster, ns, "gate")
    assert len(pods) == 1  # no retry despite backoffLimit 3
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 42


def test_termination_message_reaches_the_container_status(local_cluster: ClusterHandle,
                                                          process_node: ProcessNodeHandle, ns: str) -> None:
    apply(local_cluster, job("said", ns, "printf 'pushed sha256:ab' > /dev/termination-log"))
    manifest = job("fell", ns, "echo first line; echo the registry said no; exit 5")
    manifest["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    apply(local_cluster, manifest)
    for name in ("said", "fell"):
        wait_for(f"Job {name} to finish", lambda n=name: job_condition(local_cluster, ns, n), 90)  # type: ignore[misc]
    said = job_pods(local_cluster, ns, "said")[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert said["message"] == "pushed sha256:ab"
    fell = job_pods(local_cluster, ns, "fell")[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert fell["exitCode"] == 5 and fell["message"].endswith("first line\nthe registry said no")


def test_other_failures_are_retried_up_to_backoff_limit(local_cluster: ClusterHandle,
                                                        process_node: ProcessNodeHandle, ns: str) -> None:
    apply(local_cluster, job("flaky", ns, "exit 1", backoff_limit=1))
    cond = wait_for("Job flaky to fail", lambda: job_condition(local_cluster, ns, "flaky"), 120)
    assert (cond["type"], cond["reason"]) == ("Failed", "BackoffLimitExceeded")
    pods = job_pods(local_cluster, ns, "flaky")
    assert len(pods) == 2  # the first run and one retry
    assert {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods} == {1}


def test_env_volumes_init_containers_and_service_account(local_cluster: ClusterHandle,
                                                         process_node: ProcessNodeHandle, ns: str) -> None:
    """One pod checks, from the inside, everything the node materialised; it exits 0 only if all is right."""
    local_cluster.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=greeting=hello",
                          "--from-literal=mode=fast")
    local_cluster.kubectl("create", "secret", "generic", "creds", "-n", ns, "--from-literal=key=s3cr3t")
    local_cluster.kubectl("create", "serviceaccount", "reader", "-n", ns)
    local_cluster.kubectl("create", "role", "pod-reader", "-n", ns, "--verb=get", "--resource=pods")
    local_cluster.kubectl("create", "rolebinding", "reader", "-n", ns, "--role=pod-reader",
                          f"--serviceaccount={ns}:reader")
    # The in-cluster client reads its own pod through the API server at the Service address 10.96.0.1.
    read_self = ("from kubernetes import client, config; import os; config.load_incluster_config(); "
                 "pod = client.CoreV1Api().read_namespaced_pod(os.environ['POD_NAME'], os.environ['POD_NS']); "
                 "assert pod.status.pod_ip == os.environ['POD_IP'], pod.status.pod_ip; print('api ok')")
    checks = " && ".join([
        'test "$GREETING" = hello', 'test "$KEY" = s3cr3t', 'test "$GREETING_COPY" = hello-from-$(POD_NAME)',
        'test "$CPU_M" = 250', 'test "$(cat /etc/cfg/greeting)" = hello', 'test "$(cat /etc/creds/key)" = s3cr3t',
        'test "$(cat /etc/podinfo/name)" = "$POD_NAME"', 'test "$(cat /scratch/from-init)" = init-ran',
        'test "$(pwd)" = /scratch', '! touch /etc/cfg/x 2>/dev/null',
        'test -s /var/run/secrets/kubernetes.io/serviceaccount/token',
        f'python -c "{read_self}"',
    ])
    manifest = job("inside", ns, checks)
    pod_spec = manifest["spec"]["template"]["spec"]
    pod_spec["serviceAccountName"] = "reader"
    pod_spec["initContainers"] = [{"name": "prepare", "image": "busybox", "command": ["sh", "-c",
                                   "echo init-ran > /scratch/from-init"],
                                   "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]
    main = pod_spec["containers"][0]
    main["workingDir"] = "/scratch"
    main["resources"] = {"limits": {"nvidia.com/gpu": "1", "cpu": "250m"}}
    main["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "GREETING_COPY", "value": "$(GREETING)-from-$(POD_NAME)"},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
    ]
    main["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "creds", "mountPath": "/etc/creds"},
                            {"name": "podinfo", "mountPath": "/etc/podinfo"},
                            {"name": "scratch", "mountPath": "/scratch"}]
    pod_spec["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "podinfo", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "scratch", "emptyDir": {}},
    ]
    apply(local_cluster, manifest)
    cond = wait_for("Job inside to finish", lambda: job_condition(local_cluster, ns, "inside"), 120)
    assert cond["type"] == "Complete", process_node.container_logs()
    (pod,) = job_pods(local_cluster, ns, "inside")
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_restart_policy_backoff_and_probes(local_cluster: ClusterHandle, process_node: ProcessNodeHandle,
                                           ns: str) -> None:
    """A crash-looping container is restarted with back-off; an exec readiness probe gates Ready."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loop", "namespace": ns}, "spec": {
        **PLACEMENT, "restartPolicy": "Always",
        "containers": [
            {"name": "crash", "image": "busybox", "command": ["sh", "-c", "sleep 0.2; exit 3"]},
            {"name": "steady", "image": "busybox", "command": ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 3600"],
             "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1},
             "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
        "volumes": [{"name": "tmp", "emptyDir": {}}]}}
    apply(local_cluster, pod)

    def statuses() -> dict[str, Any]:
        got = local_cluster.get_json("pod", "loop", "-n", ns).get("status", {})
        return {c["name"]: c for c in got.get("containerStatuses") or []}

    crash = wait_for("two restarts", lambda: (s := statuses()).get("crash", {}).get("restartCount", 0) >= 2 and s,
                     60)["crash"]
    assert crash["lastState"]["terminated"]["exitCode"] == 3
    steady = wait_for("steady ready", lambda: statuses().get("steady", {}).get("ready") and statuses(), 60)["steady"]
    assert steady["restartCount"] == 0
    phase = local_cluster.get_json("pod", "loop", "-n", ns)["status"]["phase"]
    assert phase == "Running"


def test_deletion_sends_sigterm_then_removes_the_pod(local_cluster: ClusterHandle, process_node: ProcessNodeHandle,
                                                      ns: str, tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    script = f"trap 'echo term > {marker}; exit 0' TERM; while true; do sleep 0.1; done"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graceful", "namespace": ns}, "spec": {
        **PLACEMENT, "terminationGracePeriodSeconds": 20,
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}
    apply(local_cluster, pod)
    wait_for("pod running", lambda: local_cluster.get_json("pod", "graceful", "-n", ns)["status"].get("phase")
             == "Running", 60)
    uid = local_cluster.get_json("pod", "graceful", "-n", ns)["metadata"]["uid"]
    local_cluster.kubectl("delete", "pod", "graceful", "-n", ns, "--wait=true", timeout=60)
    assert marker.read_text().strip() == "term"  # the process got SIGTERM (and its trap ran) before the kill
    assert not list((process_node.state_dir / "containers").glob(f"{uid}_*.json"))  # no process left


def test_node_crash_leaves_no_process_behind(local_cluster: ClusterHandle, ns: str, tmp_path: Path) -> None:
    """`down` after a SIGKILL of the node process still stops the pods' processes and the pod network."""
    import os
    import signal
    import subprocess

    from tests.controlplane.cluster import bin_dir
    from tests.procnode.procs import proc_start_time

    node = ProcessNodeHandle(tmp_path / "crash-node", Path(local_cluster.kubeconfig), name="proc-node-crash")
    node.up(bin_dir())
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "namespace": ns}, "spec": {
            **PLACEMENT, "nodeName": "proc-node-crash",
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}
        apply(local_cluster, pod)
        records = wait_for("container started", lambda: list((node.state_dir / "containers").glob("*.json")), 60)
        pid = json.loads(records[0].read_text())["pid"]
        record = node.record()
        assert record is not None
        os.kill(int(record["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
        wait_for("node process gone", lambda: not node.running(), 10)
        assert proc_start_time(pid) is not None  # the orphan still runs ...
        netns = f"senseops-pn{record['block']}"
    finally:
        node.down()
    wait_for("orphan stopped", lambda: proc_start_time(pid) is None, 10)  # ... until down()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert netns not in listed.split()
    local_cluster.kubectl("delete", "pod", "orphan", "-n", ns, "--force", "--grace-period=0", check=False)
    local_cluster.kubectl("delete", "node", "proc-node-crash", check=False)


@pytest.mark.slow
def test_runtime_deployment_serves_behind_endpointslices_and_survives_a_pod_deletion(
        local_cluster: ClusterHandle, process_node: ProcessNodeHandle, ns: str) -> None:
    from tests.testmodel import ensure_tiny_model

    model_dir = Path(ensure_tiny_model())
    local_cluster.kubectl("create", "secret", "generic", "runtime-jwt", "-n", ns,
                          f"--from-literal=hs256-secret={RUNTIME_SECRET}")
    for obj in runtime_deployment(ns, model_dir):
        apply(local_cluster, obj)

    def available() -> bool:
        status = local_cluster.get_json("deployment", "runtime", "-n", ns).get("status", {})
        return status.get("availableReplicas") == 2

    wait_for("Deployment Available with 2 replicas", available, 400, 2)
    pods = local_cluster.get_json("pods", "-n", ns, "-l", "app.kubernetes.io/name=senseops-runtime")["items"]
    pod_ips = {p["status"]["podIP"] for p in pods}
    assert len(pod_ips) == 2 and all(ip.startswith("198.18.") for ip in pod_ips)
    wait_for("EndpointSlices list both pods", lambda: ready_endpoints(local_cluster, ns, "runtime") == pod_ips, 30)
    for ip in pod_ips:
        with urllib.request.urlopen(f"http://{ip}:8000/readyz", timeout=5) as resp:
            assert resp.status == 200

    # Requests flow to both pods while one is deleted: count failures against the requests in flight.
    victim = pods[0]
    victim_ip = victim["status"]["podIP"]
    stop = threading.Event()
    results: list[tuple[str, bool]] = []

    def load(ip_source: Callable[[], list[str]]) -> None:
        i = 0
        while not stop.is_set():
            targets = ip_source()
            ip = targets[i % len(targets)]
            i += 1
            try:
                with urllib.request.urlopen(f"http://{ip}:8000/healthz", timeout=5) as resp:
                    results.append((ip, resp.status == 200))
            except (urllib.error.URLError, OSError):
                results.append((ip, False))

    current = {"ips": sorted(pod_ips)}

    def follow() -> None:  # a client that follows the EndpointSlices, as a proxy does
        while not stop.is_set():
            ips = sorted(ready_endpoints(local_cluster, ns, "runtime"))
            if ips:
                current["ips"] = ips
            time.sleep(0.2)

    threads = [threading.Thread(target=load, args=(lambda: current["ips"],)), threading.Thread(target=follow)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        local_cluster.kubectl("delete", "pod", victim["metadata"]["name"], "-n", ns, "--wait=false")
        wait_for("victim leaves the ready endpoints",
                 lambda: victim_ip not in ready_endpoints(local_cluster, ns, "runtime"), 30, 0.2)
        wait_for("replacement pod ready", lambda: len(ready_endpoints(local_cluster, ns, "runtime")) == 2, 400, 2)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failures = [ip for ip, ok in results if not ok]
    print(f"pod deletion under load: {len(failures)} failed of {len(results)} requests")
    # The preStop sleep keeps the victim serving until clients have seen it leave the EndpointSlices, so at
    # most the one request in flight when its process stopped may fail.
    assert all(ip == victim_ip for ip in failures), failures
    assert len(failures) <= 1, f"{len(failures)} failed of {len(results)}"
    assert any(ip != victim_ip and ip not in pod_ips and ok for ip, ok in results)  # the replacement served
    new_ips = ready_endpoints(local_cluster, ns, "runtime")
    assert victim_ip not in new_ips and len(new_ips) == 2
