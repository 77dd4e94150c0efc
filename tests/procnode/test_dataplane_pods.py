"""Real pods meet the real data plane: a model image from the OCI registry reaches a runtime pod through an
image volume, and Prometheus discovers the runtime pods from the API server and scrapes them."""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from senseops_common.storage.verify import local_directory_manifest
from tests.controlplane.fixtures import ClusterHandle
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.test_procnode import apply, wait_for
from tests.procnode.workloads import jwt_secret, ready_endpoints, runtime_deployment
from tests.servers.prometheus import PrometheusServer
from tests.servers.registry import RegistryServer, docker_config

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def ns(local_cluster: ClusterHandle) -> str:
    name = "dp-" + secrets.token_hex(3)
    local_cluster.kubectl("create", "namespace", name)
    apply(local_cluster, jwt_secret(name))
    return name


def pull_secret(ns: str, registry: RegistryServer) -> dict[str, Any]:
    config = json.dumps(docker_config(registry.host, registry.user, registry.password))
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "registry-pull", "namespace": ns},
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}}


def test_model_image_reaches_the_runtime_through_an_image_volume(
        local_cluster: ClusterHandle, process_node: ProcessNodeHandle, oci_registry: RegistryServer, ns: str) -> None:
    from tests.testmodel import ensure_tiny_model

    model_dir = Path(ensure_tiny_model())
    _, source_digest, _ = local_directory_manifest(model_dir)
    labels = {"org.opencontainers.image.title": "tiny", "dev.senseops.model.sha256": source_digest}
    ref = oci_registry.push_model_dir(model_dir, "models/tiny", "v1", labels)
    # Anonymous pulls are refused: the pod gets the registry credentials from its imagePullSecrets.
    assert oci_registry.crane("digest", ref, authenticated=False, check=False).returncode != 0
    apply(local_cluster, pull_secret(ns, oci_registry))
    # SENSEOPS_MODEL_SHA256 makes the runtime refuse to start unless the mounted files hash to the source's.
    for obj in runtime_deployment(ns, name="imgvol", replicas=1, image=ref, model_sha256=source_digest,
                                  pull_secret="registry-pull"):
        apply(local_cluster, obj)
    ip = wait_for("the image-volume pod ready", lambda: next(iter(ready_endpoints(local_cluster, ns, "imgvol")), None),
                  400, 2)
    with urllib.request.urlopen(f"http://{ip}:8000/api/health", timeout=5) as resp:
        health = json.loads(resp.read())
    assert resp.status == 200, health
    # The node unpacked the image once per digest; its files are the source's, byte for byte.
    digest = ref.split("@", 1)[1]
    unpacked = process_node.state_dir / "images" / digest.replace(":", "-") / "models"
    assert local_directory_manifest(unpacked)[1] == source_digest


def test_prometheus_scrapes_the_runtime_pods(local_cluster: ClusterHandle, process_node: ProcessNodeHandle,
                                             prometheus_server: PrometheusServer, ns: str) -> None:
    from tests.testmodel import ensure_tiny_model

    for obj in runtime_deployment(ns, Path(ensure_tiny_model()), name="scraped", replicas=2, version="v7"):
        apply(local_cluster, obj)
    def two_ready() -> set[str] | None:
        found = ready_endpoints(local_cluster, ns, "scraped")
        return found if len(found) == 2 else None

    ips = wait_for("two ready runtime pods", two_ready, 400, 2)

    def up_targets() -> set[str]:
        active, _ = prometheus_server.targets()
        return {str(urllib.parse.urlparse(t["scrapeUrl"]).hostname) for t in active
                if t["health"] == "up" and t["labels"].get("namespace") == ns}

    assert prometheus_server.wait_for("both runtime pods as up targets",
                                      lambda: up_targets() >= ips or None, 90) is not None
    query = f'sum(senseops_http_requests_total{{namespace="{ns}",route="/api/health"}})'

    def total() -> float:
        result = prometheus_server.query(query)
        return float(result[0]["value"][1]) if result else 0.0

    before = total()
    for _ in range(20):
        for ip in ips:
            with urllib.request.urlopen(f"http://{ip}:8000/api/health", timeout=5):
                pass
    time.sleep(0.1)
    after = prometheus_server.wait_for("the request counter to rise by 40",
                                       lambda: (v := total()) >= before + 40 and v, 60)
    assert after >= before + 40
    # The pod labels come along: the version label selects one model version's series.
    versions = prometheus_server.query(f'count by (app_kubernetes_io_version) (up{{namespace="{ns}"}})')
    assert {r["metric"].get("app_kubernetes_io_version") for r in versions} == {"v7"}
