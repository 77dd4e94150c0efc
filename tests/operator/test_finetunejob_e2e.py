"""FineTuneJob end to end: the real operator (running as the ServiceAccount and RBAC in manifests/, not as
cluster admin) waits for enough recorded audio in MinIO, launches the training Job, whose pod really runs
the trainer on the process node, follows its stages, builds and pushes the model image to the real registry
(crane in a second Job; the operator reads the digest back), and publishes the fine-tuned ASRModel, which it
then verifies. A gate that cannot pass ends in Failed/GateFailed with nothing published and no image pushed."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from senseops_common.layout import iter_segment_records
from senseops_common.storage import StoreConfig, local_directory_manifest, open_store
from senseops_trainer import synthetic
from tests.common.environ import environment
from tests.controlplane.fixtures import ClusterHandle
from tests.operator.operator_process import OperatorProcess
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.workloads import tiny_cpu_training
from tests.servers.minio import MinioServer
from tests.servers.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NS = "senseops-system"
TRAIN_TIMEOUT_S = 900.0
# A whole run (waiting for data, training, evaluation, export, image build) outlasts the suite's 900 s
# per-test limit when the two cores are shared; the stage watches keep their own deadlines.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(TRAIN_TIMEOUT_S + 900)]


def operator_kubeconfig(cluster: ClusterHandle, target: Path) -> Path:
    """A kubeconfig for the operator's ServiceAccount from manifests/operator (its RBAC, nothing more)."""
    for name in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml"):
        cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "operator" / name))
    token = cluster.kubectl("create", "token", "senseops-operator", "-n", OPERATOR_NS, "--duration=3h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = admin["clusters"][0]["cluster"]
    target.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
    }))
    target.chmod(0o600)
    return target


@dataclass
class Setup:
    cluster: ClusterHandle
    namespace: str
    bucket: str
    store_env: dict[str, str]
    operator: OperatorProcess
    staging: Path  # the whole synthetic corpus, copied into the bucket in two halves
    registry: RegistryServer
    base_image: str  # the runtime base the model images are built on

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(obj))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.cluster.get_json(kind, name, "-n", self.namespace)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def setup(local_cluster: ClusterHandle, process_node: ProcessNodeHandle, minio_server: MinioServer,
          oci_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    from tests.testmodel import ensure_tiny_model

    local_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    for plural in ("asrmodels", "finetunejobs", "rollouts"):
        local_cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.senseops.dev", "--timeout=60s")
    namespace = f"ftj-{secrets.token_hex(3)}"
    local_cluster.kubectl("create", "namespace", namespace)
    bucket = f"ftj-{secrets.token_hex(4)}"
    minio_server.create_bucket(bucket)
    store_env = minio_server.store_env()
    store = open_store(f"s3://{bucket}/", StoreConfig.from_env(store_env))
    # The base model, published the way the trainer packages one.
    model_dir = Path(ensure_tiny_model())
    _, digest, _ = local_directory_manifest(model_dir)
    from senseops_trainer.package import upload_model_dir

    with environment(store_env):  # the packager reads the store settings from the environment
        upload_model_dir(model_dir, f"s3://{bucket}/", "base", "v1")
    staging = tmp_path_factory.mktemp("corpus")
    synthetic.write_corpus(open_store(staging.as_uri() + "/"))
    store.put(synthetic.GOLDEN_KEY, (staging / synthetic.GOLDEN_KEY).read_bytes())
    # Training pods reach MinIO at the same loopback address; the store settings come from a Secret.
    process_node.mirror(minio_server.port)
    local_cluster.kubectl("create", "secret", "generic", "store", "-n", namespace,
                          *[f"--from-literal={k}={v}" for k, v in store_env.items()])
    # The image build pod pushes with a dockerconfigjson Secret; the operator reads digests back with its own
    # copy of the registry credentials (SENSEOPS_REGISTRY_AUTH_FILE), never with the user's Secret.
    process_node.mirror(oci_registry.port)
    base_dir = tmp_path_factory.mktemp("runtime-base")
    (base_dir / "README").write_text("stand-in for the runtime base image\n")
    base_image = oci_registry.push_model_dir(base_dir, "senseops/runtime-base", "e2e")
    docker_config = oci_registry.docker_config_dir / "config.json"
    local_cluster.kubectl("create", "secret", "generic", "push", "-n", namespace,
                          "--type=kubernetes.io/dockerconfigjson", f"--from-file=.dockerconfigjson={docker_config}")
    kubeconfig = operator_kubeconfig(local_cluster, tmp_path_factory.mktemp("operator") / "kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator-log") / "operator.log", [namespace],
                               {**store_env, "SENSEOPS_REGISTRY_AUTH_FILE": str(docker_config),
                                "SENSEOPS_IMAGE_BASE": base_image}).start()
    ready = Setup(local_cluster, namespace, bucket, store_env, operator, staging, oci_registry, base_image)
    ready.apply({"apiVersion": "senseops.dev/v1alpha1", "kind": "ASRModel", "metadata": {"name": "base"},
                 "spec": {"version": "v1", "artifact": {"uri": f"s3://{bucket}/models/base/v1/", "sha256": digest}}})
    try:
        yield ready
    finally:
        for kind in ("finetunejobs", "asrmodels"):
            local_cluster.kubectl("delete", kind, "--all", "-n", namespace, "--timeout=60s", check=False)
        operator.stop()
        local_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def copy_session(staging: Path, bucket_store: Any, session_ts: str) -> None:
    """Make one recorded session of the demo anchor 'arrive' in the bucket (audio and transcript index)."""
    for kind in ("raw", "asr"):
        folder = staging / kind / synthetic.ANCHOR / session_ts
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            bucket_store.put(path.relative_to(staging).as_posix(), path.read_bytes())


def index_hours(staging: Path, sessions: tuple[str, ...]) -> float:
    """Hours the operator's readiness counts for these sessions (default filters: confidence, duration)."""
    total = 0.0
    for record in iter_segment_records(open_store(staging.as_uri() + "/"), synthetic.ANCHOR):
        seconds = (record.end_ms - record.start_ms) / 1000
        if record.session_ts in sessions and record.confidence >= 0.8 and 1.0 <= seconds <= 30.0:
            total += seconds / 3600
    return total


def fine_tune_job(setup: Setup, name: str, min_hours: float, output: str, **gate: Any) -> dict[str, Any]:
    bucket = setup.bucket
    return {
        "apiVersion": "senseops.dev/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "base"},
            "dataset": {"source": f"s3://{bucket}/", "anchorIds": [synthetic.ANCHOR], "minHours": min_hours,
                        "window": {"start": synthetic.WINDOW[0], "end": synthetic.WINDOW[1]},
                        "heldOut": {"validationFraction": 0.1,
                                    "goldenSetUri": f"s3://{bucket}/{synthetic.GOLDEN_KEY}"}},
            **tiny_cpu_training(),
            "output": {"modelName": output, "storeUri": f"s3://{bucket}/", "version": name},
            "evaluationGate": gate or {"minImprovement": 0.05},
            "trainerImage": "senseops/trainer:test",
            "storeSecret": "store",
            "image": {"registry": setup.registry.host, "repository": f"e2e/{output}", "pushSecret": "push"},
        },
    }


def watch_stages(setup: Setup, name: str, until: tuple[str, ...], timeout_s: float) -> tuple[list[str], dict[str, Any]]:
    """Poll `kubectl get ftj` and record each stage it shows until one of ``until``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = setup.get("finetunejob", name)
        stage = (obj.get("status") or {}).get("stage")
        if stage and (not seen or seen[-1] != stage):
            seen.append(stage)
        if stage in until:
            return seen, obj
        time.sleep(1)
    raise AssertionError(f"{name}: stages {seen}, never reached {until}; status "
                         f"{json.dumps(obj.get('status'), indent=1)}\noperator log:\n{setup.operator.log_tail()}")


def test_waits_for_data_then_trains_evaluates_and_publishes(setup: Setup) -> None:
    store = open_store(f"s3://{setup.bucket}/", StoreConfig.from_env(setup.store_env))
    first, second = synthetic.SESSION_TS
    copy_session(setup.staging, store, first)
    have = index_hours(setup.staging, (first,))
    need = have + 0.1 * index_hours(setup.staging, (second,))
    setup.apply(fine_tune_job(setup, "tune", round(need, 4), "tuned"))
    seen, obj = watch_stages(setup, "tune", ("WaitingForData",), 120)
    data = obj["status"]["data"]
    assert abs(data["availableHours"] - have) < 1e-3 and data["neededHours"] == round(need, 4)
    printed = setup.cluster.kubectl("get", "ftj", "tune", "-n", setup.namespace).stdout
    assert "WaitingForData" in printed and data["summary"] in printed
    assert setup.cluster.get_json("jobs", "-n", setup.namespace)["items"] == []

    copy_session(setup.staging, store, second)  # more recordings arrive; seen at the next back-off check
    seen2, obj = watch_stages(setup, "tune", ("Succeeded", "Failed"), TRAIN_TIMEOUT_S)
    stages = seen + seen2
    status = obj["status"]
    assert status["stage"] == "Succeeded", (stages, status.get("message"), setup.operator.log_tail())
    # Every stage the operator published left an Event; the 1 s poll above can miss a short one.
    reasons = setup.cluster.kubectl("get", "events", "-n", setup.namespace, "--field-selector",
                                    "involvedObject.name=tune", "-o", "jsonpath={.items[*].reason}").stdout.split()
    published = [r.removeprefix("Stage") for r in reasons if r.startswith("Stage")]
    assert {"Training", "Evaluating", "Packaging", "BuildingImage"} <= set(published), (published, stages)
    jobs = setup.cluster.get_json("jobs", "-n", setup.namespace)["items"]
    assert sorted(j["metadata"]["name"] for j in jobs) == ["tune-image", "tune-train"]
    # The new model beats the base on the held-out golden set.
    metrics = status["metrics"]
    assert metrics["newCer"] < metrics["baseCer"] - 0.05, metrics
    model = setup.get("asrmodel", "tuned")
    assert model["metadata"]["labels"]["senseops.dev/finetunejob"] == "tune"
    assert not model["metadata"].get("ownerReferences")  # the model outlives its FineTuneJob
    assert model["spec"]["lineage"] == {"baseModel": "base", "fineTuneJob": "tune",
                                        "dataset": f"s3://{setup.bucket}/"}
    deadline = time.monotonic() + 120
    while (model.get("status") or {}).get("phase") != "Ready" and time.monotonic() < deadline:
        time.sleep(1)
        model = setup.get("asrmodel", "tuned")
    assert model["status"]["phase"] == "Ready", model.get("status")  # the operator verified the artifact
    # The trainer's pod used a ServiceAccount that may patch only this FineTuneJob's status.
    role = setup.get("role", "tune-trainer")
    assert all(rule["resourceNames"] == ["tune"] for rule in role["rules"])
    check_pushed_image(setup, status, model)
    cm = setup.get("configmap", "tune-job")
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(cm) and setup.store_env["AWS_SECRET_ACCESS_KEY"] not in \
        json.dumps(cm)
    # The operator runs with exactly manifests/operator's RBAC: kopf never had to retry a forbidden list or watch
    # (without `namespaces: list, watch` it retried for about a minute on every start and served nothing).
    log = setup.operator.log_path.read_text(errors="replace")
    assert "Not enough permissions" not in log, setup.operator.log_tail()


def test_a_gate_that_cannot_pass_fails_and_publishes_nothing(setup: Setup) -> None:
    # Both sessions are in the bucket once the first test ran; this one only needs them to be there.
    store = open_store(f"s3://{setup.bucket}/", StoreConfig.from_env(setup.store_env))
    for session in synthetic.SESSION_TS:
        copy_session(setup.staging, store, session)
    job = fine_tune_job(setup, "never", 0.001, "never-model", minImprovement=0.9)
    job["spec"]["hyperparameters"]["epochs"] = 1
    setup.apply(job)
    _, obj = watch_stages(setup, "never", ("Succeeded", "Failed"), TRAIN_TIMEOUT_S)
    status = obj["status"]
    assert status["stage"] == "Failed", status.get("message")
    succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert succeeded["reason"] == "GateFailed", succeeded
    assert "CER" in status["message"] and "->" in status["message"], status["message"]
    pods = setup.cluster.get_json("pods", "-n", setup.namespace, "-l", "job-name=never-train")["items"]
    assert len(pods) == 1  # exit 3 fails the Job at once (podFailurePolicy), no retry
    assert setup.cluster.kubectl("get", "asrmodel", "never-model", "-n", setup.namespace,
                                 check=False).returncode != 0
    assert not store.exists("models/never-model/never/MANIFEST.sha256")
    # Nothing was built or pushed for the failed job.
    assert setup.cluster.kubectl("get", "job", "never-image", "-n", setup.namespace, check=False).returncode != 0
    assert "e2e/never-model" not in catalog(setup.registry)


def catalog(registry: RegistryServer) -> list[str]:
    return registry.crane("catalog", registry.host).stdout.split()


def check_pushed_image(setup: Setup, status: dict[str, Any], model: dict[str, Any]) -> None:
    """The image in the registry: the digest recorded in the FineTuneJob and the ASRModel, the model files
    under /models/tuned/tune/ byte for byte as packaged, on the runtime base, with the OCI labels."""
    registry = setup.registry
    tag = f"{registry.host}/e2e/tuned:tune"
    digest = registry.crane("digest", tag).stdout.strip()
    assert status["image"] == {"tag": tag, "digest": digest, "reference": f"{registry.host}/e2e/tuned@{digest}"}
    assert model["spec"]["image"] == {"reference": f"{registry.host}/e2e/tuned@{digest}", "pullSecret": "push"}
    labels = json.loads(registry.crane("config", tag).stdout)["config"]["Labels"]
    artifact = model["spec"]["artifact"]
    assert labels["dev.senseops.artifact.sha256"] == artifact["sha256"]
    assert labels["dev.senseops.model.name"] == "tuned" and labels["dev.senseops.model.version"] == "tune"
    assert labels["dev.senseops.finetunejob"] == f"{setup.namespace}/tune"
    assert labels["dev.senseops.base-model"] == "base"
    assert labels["org.opencontainers.image.base.name"] == setup.base_image
    with tarfile.open(fileobj=io.BytesIO(registry.export(tag))) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert "models/README" in files  # the base image's layer
    store = open_store(f"s3://{setup.bucket}/", StoreConfig.from_env(setup.store_env))
    manifest = store.get_bytes("models/tuned/tune/MANIFEST.sha256")
    assert files["models/tuned/tune/MANIFEST.sha256"] == manifest
    packaged = {info.key for info in store.list("models/tuned/tune/")}  # keys from the bucket root: the same paths
    assert packaged and packaged <= set(files), (sorted(packaged), sorted(files))
    for key in packaged:
        assert files[key] == store.get_bytes(key), key
