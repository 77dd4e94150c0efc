"""Observation: read what the decisions need from the cluster and the object stores (blocking I/O,
called through `asyncio.to_thread` by the handlers)."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from senseops_common.storage import verify_object
from senseops_operator import constants as c
from senseops_operator.decide.asrmodel import ArtifactCheck


def check_artifact(spec: dict[str, Any]) -> ArtifactCheck:
    """Ask the store whether the artifact exists with the expected size and sha256."""
    artifact = spec["artifact"]
    uri: str = artifact["uri"]
    if uri.startswith("oci://"):
        return ArtifactCheck(False, "UnsupportedScheme", f"{uri}: oci:// artifacts are verified by image builds")
    result = verify_object(uri, artifact["sha256"], artifact.get("sizeBytes"))
    return ArtifactCheck(result.ok, result.reason, result.message, result.size, result.sha256)


def model_phases(api: client.CustomObjectsApi, namespace: str, names: list[str]) -> dict[str, str | None]:
    """Phase of each named ASRModel in the namespace (None when it does not exist)."""
    phases: dict[str, str | None] = {}
    for name in names:
        try:
            obj = api.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, "asrmodels", name)
        except ApiException as exc:
            if exc.status == 404:
                phases[name] = None
                continue
            raise
        phases[name] = (obj.get("status") or {}).get("phase") or "Pending"
    return phases
