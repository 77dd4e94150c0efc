"""The real Prometheus 3.x built here: its config is valid, it discovers pods from the local API server
but never targets a pod outside the process node's network, and it scrapes and queries a loopback target."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from tests.controlplane.fixtures import ClusterHandle
from tests.servers._proc import go_binary
from tests.servers.prometheus import (
    POD_JOB,
    PrometheusServer,
    PrometheusSettings,
    StaticTarget,
    sample_values,
)


@pytest.fixture
def loopback_exporter() -> Iterator[tuple[str, Counter]]:
    """A real /metrics endpoint on 127.0.0.1 (prometheus_client) with one counter the test drives."""
    registry = CollectorRegistry()
    counter = Counter("senseops_probe_requests", "requests seen by the probe", registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}", counter
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_built_prometheus_has_the_pinned_version_and_kubernetes_discovery(tmp_path: Path) -> None:
    version = subprocess.run([str(go_binary("prometheus")), "--version"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    assert re.search(r"prometheus, version 3\.16\.0\b", version), version
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    server = PrometheusServer(tmp_path, PrometheusSettings(
        kubeconfig=kubeconfig, static_targets=(StaticTarget("operator", "127.0.0.1:9000"),)))
    check = subprocess.run([str(go_binary("promtool")), "check", "config", str(server.write_config())],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr  # Debian's 2.42 fails here: no kubernetes_sd


def _kwok_pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "probe", "app.kubernetes.io/version": "v1"},
                     "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8000",
                                     "prometheus.io/path": "/metrics"}},
        "spec": {"containers": [{"name": "runtime", "image": "senseops/runtime:test",
                                 "ports": [{"containerPort": 8000}]}]},
    }


@pytest.mark.cluster
def test_kwok_pod_is_discovered_but_only_ever_dropped(local_cluster: ClusterHandle,
                                                       prometheus_server: PrometheusServer) -> None:
    namespace = "prom-" + secrets.token_hex(3)
    local_cluster.kubectl("create", "namespace", namespace)
    try:
        local_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_kwok_pod("fake-runtime")))
        local_cluster.kubectl("wait", "-n", namespace, "--for=jsonpath={.status.podIP}", "pod/fake-runtime",
                              "--timeout=60s")
        pod_ip = local_cluster.get_json("pod", "fake-runtime", "-n", namespace)["status"]["podIP"]
        assert not pod_ip.startswith(("198.18.", "198.19."))  # kwok's fake network, unreachable here

        def dropped_with_ip() -> list[dict[str, object]]:
            _, dropped = prometheus_server.targets()
            return [t for t in dropped
                    if t["discoveredLabels"].get("__meta_kubernetes_namespace") == namespace
                    and t["discoveredLabels"].get("__meta_kubernetes_pod_ip") == pod_ip]

        # Discovery through the kubeconfig works: the pod, with its kwok IP and annotations, reaches Prometheus.
        (seen,) = prometheus_server.wait_for("the kwok pod among the discovered targets", dropped_with_ip)
        assert seen["discoveredLabels"]["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
        time.sleep(3)  # a few scrape intervals
        active, _ = prometheus_server.targets()
        assert not [t for t in active if t["labels"].get("namespace") == namespace]
        assert not [t for t in active if t["scrapePool"] == POD_JOB and pod_ip in t["scrapeUrl"]]
    finally:
        local_cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.cluster
def test_static_loopback_target_is_scraped_and_survives_a_restart(
        prometheus_server: PrometheusServer, loopback_exporter: tuple[str, Counter]) -> None:
    address, counter = loopback_exporter
    job = "probe-" + secrets.token_hex(3)
    counter.inc(41)
    prometheus_server.reconfigure(static_targets=(StaticTarget(job, address, labels={"component": "probe"}),))
    try:
        query = f'senseops_probe_requests_total{{job="{job}"}}'
        prometheus_server.wait_for("41 requests", lambda: sample_values(prometheus_server.query(query)) == [41.0])
        up = prometheus_server.query(f'up{{job="{job}"}}')
        assert sample_values(up) == [1.0] and up[0]["metric"]["component"] == "probe"
        counter.inc()
        prometheus_server.wait_for("42 requests", lambda: sample_values(prometheus_server.query(query)) == [42.0])

        seen_at = time.time()
        prometheus_server.stop()
        assert prometheus_server.proc is None
        counter.inc(8)
        prometheus_server.start()
        # The samples taken before the stop are still in the TSDB; scraping resumes after the start.
        assert sample_values(prometheus_server.query(query, at=seen_at)) == [42.0]
        prometheus_server.wait_for("50 requests", lambda: sample_values(prometheus_server.query(query)) == [50.0])
    finally:
        prometheus_server.reconfigure(static_targets=())
