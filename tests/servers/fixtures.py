"""pytest fixtures for the local servers (object stores, OCI registry, Prometheus); other areas reuse them.

Use from a conftest with ``from tests.servers.fixtures import minio_server, ...`` (or list
``tests.servers.fixtures`` in the root conftest's ``pytest_plugins``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.fixtures import ClusterHandle
from tests.servers.cos_standin import CosStandin
from tests.servers.minio import MinioServer
from tests.servers.prometheus import PrometheusServer, PrometheusSettings
from tests.servers.registry import RegistryServer


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A real MinIO on 127.0.0.1 for the whole session (temp data dir, generated credentials)."""
    server = MinioServer(tmp_path_factory.mktemp("minio") / "data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cos_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CosStandin]:
    """The COS protocol stand-in (moto S3 on loopback, real COS SDK) for the whole session."""
    server = CosStandin(Path(tmp_path_factory.mktemp("cos-standin"))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def minio_bucket(minio_server: MinioServer) -> str:
    """A fresh, empty bucket on the session MinIO."""
    name = "t-" + secrets.token_hex(6)
    minio_server.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A real distribution registry on 127.0.0.1 for the whole session (htpasswd auth, generated
    credentials; ``oci_registry.crane(...)`` and ``oci_registry.push_model_dir(...)`` use them)."""
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prometheus_server(local_cluster: ClusterHandle,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus for the whole session that discovers pods on the local cluster and scrapes
    every second (only pods in the process node's network; add loopback targets with
    ``prometheus_server.reconfigure(static_targets=(...))``)."""
    settings = PrometheusSettings(kubeconfig=local_cluster.kubeconfig, scrape_interval_s=1.0)
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), settings).start()
    try:
        yield server
    finally:
        server.stop()
