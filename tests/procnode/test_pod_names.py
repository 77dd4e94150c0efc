"""Pods that ask for a host name (Indexed Job pods: ``<job>-<index>`` in a headless Service's subdomain)
get it, and find each other by ``<hostname>.<subdomain>`` over the pod network — what torchrun's
rendezvous between training pods needs (tests/procnode/README.md, "Pod names")."""

from __future__ import annotations

import secrets

import pytest

from tests.common.waiting import wait_until
from tests.controlplane.fixtures import ClusterHandle
from tests.procnode.fixtures import PLACEMENT
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.test_procnode import apply, job_condition

pytestmark = pytest.mark.cluster

# Index 0 listens on its pod address; index 1 resolves index 0 by name (retrying until it appears)
# and says hello with its own host name. Each prints what it saw.
PEERS = r"""
import os, socket, sys, time
index, job = int(os.environ["JOB_COMPLETION_INDEX"]), os.environ["JOB"]
print("hostname", socket.gethostname(), flush=True)
if index == 0:
    server = socket.create_server(("0.0.0.0", 29500))
    server.settimeout(120)
    conn, peer = server.accept()
    print("got", conn.recv(100).decode(), "from", peer[0], flush=True)
    sys.exit(0)
deadline = time.monotonic() + 120
while True:
    try:
        conn = socket.create_connection((f"{job}-0.peers", 29500), timeout=5)
        break
    except OSError as err:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
conn.sendall(f"hello from {socket.gethostname()}".encode())
print("resolved", socket.gethostbyname(f"{job}-0.peers"), flush=True)
"""


def test_indexed_job_pods_reach_each_other_by_name(local_cluster: ClusterHandle, process_node: ProcessNodeHandle
                                                   ) -> None:
    ns = "pn-" + secrets.token_hex(3)
    local_cluster.kubectl("create", "namespace", ns)
    name = "peers-" + secrets.token_hex(2)
    apply(local_cluster, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "peers", "namespace": ns},
                          "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                                   "selector": {"batch.kubernetes.io/job-name": name},
                                   "ports": [{"name": "x", "port": 29500}]}})
    apply(local_cluster, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
        "spec": {"completionMode": "Indexed", "completions": 2, "parallelism": 2, "backoffLimit": 0,
                 "template": {"spec": {
                     **PLACEMENT, "restartPolicy": "Never", "subdomain": "peers",
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["python", "-c", PEERS],
                                     "env": [{"name": "JOB", "value": name}]}]}}}})
    cond = wait_until(f"Job {name} to finish", lambda: job_condition(local_cluster, ns, name), 180, 1.0)
    logs = {}
    for index in (0, 1):
        (path,) = process_node.state_dir.glob(f"pods/{ns}_{name}-{index}-*/logs/main.log")
        logs[index] = path.read_text()
    assert cond["type"] == "Complete", logs
    pods = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
            for p in local_cluster.get_json("pods", "-n", ns, "-l", f"job-name={name}")["items"]}
    ip0 = pods["0"]["status"]["podIP"]
    assert f"hostname {name}-0" in logs[0] and f"hostname {name}-1" in logs[1]
    assert f"got hello from {name}-1 from {pods['1']['status']['podIP']}" in logs[0]
    assert f"resolved {ip0}" in logs[1]
