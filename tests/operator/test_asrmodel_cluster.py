"""ASRModel verification on the real control plane, with the real operator (ServiceAccount and RBAC from
manifests/) and the real registry: an ``oci://`` artifact and ``spec.image`` become Ready with the digest
recorded; a missing image fails for good and is scheduled for a re-check only after the long back-off;
``file://`` artifacts are verified under the operator's root and refused outside it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from senseops_common.storage import local_directory_manifest
from senseops_operator.decide.asrmodel import PERMANENT_RECHECK_BASE_SECONDS
from tests.common.waiting import wait_until
from tests.controlplane.fixtures import ClusterHandle
from tests.operator.operator_process import OperatorProcess
from tests.operator.test_finetunejob_e2e import operator_kubeconfig
from tests.servers.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


@dataclass
class World:
    cluster: ClusterHandle
    namespace: str
    operator: OperatorProcess
    registry: RegistryServer
    pushed: str  # host/verify/m@sha256:…
    file_root: Path

    def apply(self, name: str, spec: dict[str, Any]) -> None:
        obj = {"apiVersion": "senseops.dev/v1alpha1", "kind": "ASRModel", "metadata": {"name": name}, "spec": spec}
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(obj))

    def settled(self, name: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj: dict[str, Any] = self.cluster.get_json("asrmodel", name, "-n", self.namespace)
            return obj if done(obj) else None
        try:
            return wait_until(f"ASRModel {name}", check, 90, 0.5)  # type: ignore[no-any-return]
        except Exception as exc:
            raise AssertionError(f"{exc}\n{self.operator.log_tail()}") from exc


def phase_in(*phases: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: (obj.get("status") or {}).get("phase") in phases


@pytest.fixture(scope="module")
def world(local_cluster: ClusterHandle, oci_registry: RegistryServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    local_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    local_cluster.kubectl("wait", "--for=condition=Established", "crd/asrmodels.senseops.dev", "--timeout=60s")
    namespace = f"asrv-{secrets.token_hex(3)}"
    local_cluster.kubectl("create", "namespace", namespace)
    image_dir = tmp_path_factory.mktemp("image-model")
    (image_dir / "model.pt").write_bytes(secrets.token_bytes(1024))
    pushed = oci_registry.push_model_dir(image_dir, "verify-cluster/m", "v1")
    file_root = tmp_path_factory.mktemp("file-artifacts")
    kubeconfig = operator_kubeconfig(local_cluster, tmp_path_factory.mktemp("op") / "kubeconfig")
    env = {"SENSEOPS_REGISTRY_AUTH_FILE": str(oci_registry.docker_config_dir / "config.json"),
           "SENSEOPS_FILE_ARTIFACT_ROOT": str(file_root)}
    operator = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("op-log") / "operator.log", [namespace],
                               env).start()
    try:
        yield World(local_cluster, namespace, operator, oci_registry, pushed, file_root)
    finally:
        local_cluster.kubectl("delete", "asr", "--all", "-n", namespace, "--timeout=60s", check=False)
        operator.stop()
        local_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_oci_artifact_and_image_are_verified_against_the_registry(world: World) -> None:
    digest = world.pushed.split("@", 1)[1]
    world.apply("oci", {"version": "v1", "artifact": {"uri": f"oci://{world.pushed}", "sha256": digest[7:]},
                        "image": {"reference": f"{world.registry.host}/verify-cluster/m:v1"}})
    obj = world.settled("oci", phase_in("Ready", "Failed"))
    status = obj["status"]
    assert status["phase"] == "Ready", status
    assert status["image"] == {"reference": f"{world.registry.host}/verify-cluster/m:v1", "digest": digest}
    assert status["artifact"]["verified"] is True and status["artifact"]["sha256"] == digest[7:]


def test_missing_image_fails_for_good_and_waits_the_long_back_off(world: World) -> None:
    digest = world.pushed.split("@", 1)[1]
    world.apply("gone", {"version": "v1", "artifact": {
        "uri": f"oci://{world.registry.host}/verify-cluster/absent@{digest}", "sha256": digest[7:]}})
    status = world.settled("gone", phase_in("Failed"))["status"]
    verified = next(c for c in status["conditions"] if c["type"] == "ArtifactVerified")
    assert verified["reason"] == "ManifestNotFound" and "push the image" in verified["message"]
    checked = datetime.fromisoformat(status["artifact"]["checkedAt"].replace("Z", "+00:00"))
    next_at = datetime.fromisoformat(status["nextCheckAt"].replace("Z", "+00:00"))
    assert (next_at - checked).total_seconds() >= PERMANENT_RECHECK_BASE_SECONDS
    assert status["failedChecks"] == 1


def test_file_artifacts_only_under_the_operator_root(world: World, tmp_path: Path) -> None:
    inside = world.file_root / "m" / "v1"
    inside.mkdir(parents=True)
    (inside / "model.pt").write_bytes(b"weights")
    _, digest, _ = local_directory_manifest(inside)
    world.apply("inside", {"version": "v1", "artifact": {"uri": inside.as_uri() + "/", "sha256": digest}})
    outside = tmp_path / "m"
    outside.mkdir()
    (outside / "model.pt").write_bytes(b"weights")
    world.apply("outside", {"version": "v1", "artifact": {"uri": outside.as_uri() + "/", "sha256": digest}})
    assert world.settled("inside", phase_in("Ready", "Failed"))["status"]["phase"] == "Ready"
    status = world.settled("outside", phase_in("Ready", "Failed"))["status"]
    assert status["phase"] == "Failed"
    verified = next(c for c in status["conditions"] if c["type"] == "ArtifactVerified")
    assert verified["reason"] == "OutsideArtifactRoot", verified
