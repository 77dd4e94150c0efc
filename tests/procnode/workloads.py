"""Workloads the data-plane tests run on the process node: the real runtime as a Deployment + Service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.controlplane.fixtures import ClusterHandle
from tests.procnode.fixtures import PLACEMENT

RUNTIME_SECRET = "procnode-tests-hs256-secret-0123456789abcdef"


def runtime_token(subject: str, scopes: tuple[str, ...] = ("stream",), ttl_s: int = 3600) -> str:
    """An HS256 token the runtime pods made by :func:`runtime_deployment` accept (their secret is RUNTIME_SECRET)."""
    import time

    from senseops_runtime.auth import AuthConfig, issue_token

    return issue_token(AuthConfig(hs256_secret=RUNTIME_SECRET), RUNTIME_SECRET, subject, subject, list(scopes),
                       False, time.time(), ttl_s)
JWT_SECRET_NAME = "runtime-jwt"


def jwt_secret(ns: str) -> dict[str, Any]:
    """The Secret the runtime reads its HS256 key from (mounted as a file, as in manifests/)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": JWT_SECRET_NAME, "namespace": ns},
            "stringData": {"hs256-secret": RUNTIME_SECRET}}


def tiny_cpu_training() -> dict[str, Any]:
    """FineTuneJob spec fields that train the tiny test model on the process node's CPU (no GPU request; the
    GPU path is covered by tests/procnode): the trainer demo's hyperparameters, resources and placement."""
    from senseops_trainer import demo

    return {
        "hyperparameters": {"learningRate": demo.TINY_LR, "epochs": demo.TINY_EPOCHS,
                            "batchSizeTokens": demo.TINY_BATCH_TOKENS, "warmupSteps": 20, "averageCheckpoints": 1},
        "resources": {"gpus": 0, "cpu": "2", "memory": "4Gi"},
        "placement": {"nodeSelector": PLACEMENT["nodeSelector"], "tolerations": PLACEMENT["tolerations"]},
        "runPolicy": {"backoffLimit": 1},
    }


def runtime_deployment(ns: str, model_dir: Path | None = None, *, replicas: int = 2, name: str = "runtime",
                       version: str = "v1", image: str | None = None, model_sha256: str = "",
                       pull_secret: str | None = None, extra_env: dict[str, str] | None = None,
                       ) -> list[dict[str, Any]]:
    """The runtime as a Deployment on the process node and its Service.

    The tiny model comes from ``model_dir`` (a hostPath) or from the image volume ``image`` (files under
    ``models/`` in the image, so the runtime loads ``/models/models``). Pods carry the version label and
    the Prometheus scrape annotations of ``manifests/runtime``.
    """
    labels = {"app.kubernetes.io/name": "senseops-runtime", "app.kubernetes.io/instance": name,
              "app.kubernetes.io/version": version}
    model_uri = "file:///models/models" if image else "file:///models/tiny"
    env = {
        "HOME": "/tmp", "SENSEOPS_MODEL_URI": model_uri, "SENSEOPS_MODEL_SHA256": model_sha256,
        "SENSEOPS_BACKEND": "torch", "SENSEOPS_THREADS": "1",
        "SENSEOPS_MODEL_CACHE_DIR": "/var/cache/senseops/models", "SENSEOPS_MODEL_VERSION": version,
        "SENSEOPS_JWT_HS256_SECRET_FILE": "/var/run/secrets/senseops/jwt/hs256-secret",
        **(extra_env or {}),
    }
    container = {
        "name": "runtime", "image": "senseops/runtime:test",
        "args": ["--host", "0.0.0.0", "--port", "8000"],
        "ports": [{"name": "http", "containerPort": 8000}],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "volumeMounts": [{"name": "model", "mountPath": "/models" if image else "/models/tiny", "readOnly": True},
                         {"name": "jwt", "mountPath": "/var/run/secrets/senseops/jwt", "readOnly": True},
                         {"name": "cache", "mountPath": "/var/cache/senseops/models"},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "startupProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 600},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 5},
        # Keep serving while the endpoint change reaches clients, then stop (the usual production pattern).
        "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
    }
    model_volume: dict[str, Any] = (
        {"name": "model", "image": {"reference": image, "pullPolicy": "IfNotPresent"}} if image
        else {"name": "model", "hostPath": {"path": str(model_dir)}})
    pod_spec: dict[str, Any] = {
        **PLACEMENT, "terminationGracePeriodSeconds": 15, "containers": [container],
        "volumes": [model_volume, {"name": "jwt", "secret": {"secretName": JWT_SECRET_NAME}},
                    {"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]}
    if pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": pull_secret}]
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "8000", "prometheus.io/path": "/metrics"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return [deployment, service]


def ready_endpoints(cluster: ClusterHandle, ns: str, service: str) -> set[str]:
    """Addresses of the Service's ready endpoints, read from its EndpointSlices."""
    slices = cluster.get_json("endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={service}")["items"]
    return {addr for sl in slices for ep in sl.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") for addr in ep["addresses"]}
