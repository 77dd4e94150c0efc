"""The real operator on the real control plane, verifying artifacts in a real MinIO.

It sets phase, conditions and observedGeneration, posts Events, survives a restart (objects created
while it was down are reconciled when it comes back) and exposes liveness and metrics.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from senseops_common.storage import StoreConfig, local_directory_manifest, open_store
from tests.operator.cases import asr_model, fine_tune_job, rollout
from tests.operator.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


@dataclass
class World:
    cluster: Any
    namespace: str
    operator: OperatorProcess
    bucket: str
    model_uri: str  # a directory artifact
    model_sha: str
    model_size: int
    file_uri: str  # a single-object artifact
    file_sha: str

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(obj))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.cluster.get_json(kind, name, "-n", self.namespace)  # type: ignore[no-any-return]

    def wait_for(self, kind: str, name: str, predicate: Callable[[dict[str, Any]], bool],
                 timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        obj: dict[str, Any] = {}
        while time.monotonic() < deadline:
            obj = self.get(kind, name)
            if predicate(obj):
                return obj
            time.sleep(0.5)
        raise AssertionError(f"{kind}/{name} never matched; last status: {json.dumps(obj.get('status'), indent=1)}\n"
                             f"operator log:\n{self.operator.log_tail()}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_)


def has_phase(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: obj.get("status", {}).get("phase") == phase


@pytest.fixture(scope="module")
def world(local_cluster, minio_server, tmp_path_factory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    local_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    for plural in ("asrmodels", "finetunejobs", "rollouts"):
        local_cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.senseops.dev", "--timeout=60s")
    namespace = f"op-{secrets.token_hex(3)}"
    local_cluster.kubectl("create", "namespace", namespace)

    bucket = f"models-{secrets.token_hex(3)}"
    minio_server.create_bucket(bucket)
    store = open_store(f"s3://{bucket}/", StoreConfig.from_env(minio_server.store_env()))
    model_dir = tmp_path_factory.mktemp("model")
    (model_dir / "model.pt").write_bytes(secrets.token_bytes(4096))
    (model_dir / "config.yaml").write_text("encoder: SenseVoiceEncoderSmall\n")
    (model_dir / "tokens").mkdir()
    (model_dir / "tokens" / "bpe.model").write_bytes(b"sentencepiece")
    _, digest, size = local_directory_manifest(model_dir)
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        store.put(f"models/tiny/v1/{path.relative_to(model_dir)}", path.read_bytes())
    single = store.put("models/tiny/v1.onnx", b"onnx-bytes")

    log_dir = tmp_path_factory.mktemp("operator-logs")
    operator = OperatorProcess(local_cluster.kubeconfig, log_dir / "operator.log", [namespace],
                               minio_server.store_env()).start()
    yield World(local_cluster, namespace, operator, bucket, f"s3://{bucket}/models/tiny/v1/", digest, size,
                f"s3://{bucket}/models/tiny/v1.onnx", single.sha256 or "")
    # kopf keeps a finalizer on objects with timers: delete them while the operator still runs.
    local_cluster.kubectl("delete", "asr", "--all", "-n", namespace, "--timeout=60s")
    operator.stop()
    local_cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def _model(name: str, uri: str, sha: str, size: int | None = None, fmt: str = "funasr") -> dict[str, Any]:
    obj = asr_model(name)
    obj["spec"]["artifact"] = {"uri": uri, "sha256": sha, "format": fmt} | ({"sizeBytes": size} if size else {})
    return obj


def test_verified_directory_artifact_makes_the_model_ready(world: World) -> None:
    world.apply(_model("good", world.model_uri, world.model_sha, world.model_size))
    obj = world.wait_for("asrmodel", "good", has_phase("Ready"))
    verified = condition(obj, "ArtifactVerified")
    assert (verified["status"], verified["reason"]) == ("True", "Verified")
    assert condition(obj, "Ready")["status"] == "True"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["artifact"]["sha256"] == world.model_sha
    assert obj["status"]["artifact"]["sizeBytes"] == world.model_size
    events = world.cluster.get_json("events", "-n", world.namespace, "--field-selector", "involvedObject.name=good")
    assert any(e["reason"] == "Verified" and e["type"] == "Normal" for e in events["items"])


def test_single_object_artifact_is_verified(world: World) -> None:
    world.apply(_model("onnx", world.file_uri, world.file_sha, fmt="onnx"))
    obj = world.wait_for("asrmodel", "onnx", has_phase("Ready"))
    assert condition(obj, "ArtifactVerified")["status"] == "True"


def test_wrong_digest_fails_with_reason_and_warning(world: World) -> None:
    world.apply(_model("tampered", world.model_uri, "0" * 64))
    obj = world.wait_for("asrmodel", "tampered", has_phase("Failed"))
    verified = condition(obj, "ArtifactVerified")
    assert (verified["status"], verified["reason"]) == ("False", "DigestMismatch")
    assert condition(obj, "Ready")["status"] == "False"
    events = world.cluster.get_json("events", "-n", world.namespace, "--field-selector", "involvedObject.name=tampered")
    assert any(e["type"] == "Warning" and e["reason"] == "DigestMismatch" for e in events["items"])


def test_wrong_size_fails(world: World) -> None:
    world.apply(_model("resized", world.model_uri, world.model_sha, world.model_size + 1))
    obj = world.wait_for("asrmodel", "resized", has_phase("Failed"))
    assert condition(obj, "ArtifactVerified")["reason"] == "SizeMismatch"


def test_missing_artifact_is_not_found_and_keeps_verifying(world: World) -> None:
    world.apply(_model("missing", f"s3://{world.bucket}/models/nothing/here/", world.model_sha))
    obj = world.wait_for("asrmodel", "missing", lambda o: "conditions" in o.get("status", {}))
    verified = condition(obj, "ArtifactVerified")
    assert (verified["status"], verified["reason"]) == ("False", "NotFound")
    assert obj["status"]["phase"] == "Verifying"


def test_finetunejob_waits_for_data_and_rollout_is_pending(world: World) -> None:
    world.wait_for("asrmodel", "good", has_phase("Ready"))
    job = fine_tune_job("tune-good")
    job["spec"]["baseModel"]["name"] = "good"
    job["spec"]["dataset"]["source"] = f"s3://{world.bucket}/"  # no recordings in it
    world.apply(job)
    obj = world.wait_for("finetunejob", "tune-good", lambda o: "conditions" in o.get("status", {}))
    assert obj["status"]["phase"] == "WaitingForData"
    assert obj["status"]["data"]["availableHours"] == 0 and obj["status"]["data"]["neededHours"] == 3
    assert condition(obj, "Accepted")["status"] == "True"
    assert condition(obj, "ModelsResolved")["status"] == "True"
    assert condition(obj, "DataReady")["reason"] == "NotEnoughData"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]

    ro = rollout("to-missing")
    ro["spec"]["stableModel"]["name"] = "good"
    ro["spec"]["candidateModel"]["name"] = "not-there"
    world.apply(ro)
    obj = world.wait_for("rollout", "to-missing", lambda o: "conditions" in o.get("status", {}))
    assert obj["status"]["phase"] == "Pending" and obj["status"]["actualWeight"] == 0
    resolved = condition(obj, "ModelsResolved")
    assert (resolved["status"], resolved["reason"]) == ("False", "ModelNotFound")


def test_objects_created_while_the_operator_is_down_are_reconciled(world: World) -> None:
    world.operator.stop()
    world.apply(_model("while-down", world.model_uri, world.model_sha))
    time.sleep(2)
    assert "status" not in world.get("asrmodel", "while-down"), "something else reconciled it"
    world.operator.start()
    obj = world.wait_for("asrmodel", "while-down", has_phase("Ready"))
    assert obj["status"]["observedGeneration"] == 1


def test_liveness_and_metrics_endpoints(world: World) -> None:
    world.wait_for("asrmodel", "good", has_phase("Ready"))
    assert httpx.get(world.operator.liveness_url, timeout=5).status_code == 200
    metrics = httpx.get(world.operator.metrics_url, timeout=5).text
    assert 'senseops_operator_reconciles_total{kind="ASRModel",result="ok"}' in metrics
    assert "senseops_operator_reconcile_duration_seconds_bucket" in metrics
    assert 'senseops_operator_artifact_checks_total{reason="Verified"}' in metrics
