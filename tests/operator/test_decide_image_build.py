"""Table tests for the model image build: the build Job's rendering, the build step decision, and the
FineTuneJob stages with ``spec.image`` (decide/image_build.py, decide/finetunejob.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from senseops_operator.decide import finetunejob as f
from senseops_operator.decide import image_build as ib
from senseops_operator.decide.common import find_condition

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
DIGEST = "sha256:" + "cd" * 32
OTHER = "sha256:" + "ef" * 32
SPEC: dict[str, Any] = {
    "baseModel": {"name": "base"},
    "dataset": {"source": "s3://rec/", "anchorIds": ["a1"], "minHours": 1.0},
    "output": {"modelName": "tuned", "storeUri": "s3://models/", "version": "v2"},
    "image": {"registry": "127.0.0.1:5000", "repository": "asr/tuned", "pushSecret": "push"},
    "placement": {"nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists"}],
                  "priorityClassName": "training"},
    "resources": {"gpus": 2, "cpu": "8", "memory": "32Gi"},
    "trainerImage": "reg.example.com/senseops/trainer:1.0",
    "storeSecret": "store",
}
OWNER = {"metadata": {"name": "j", "namespace": "ns", "uid": "u-1"}, "spec": SPEC}
TAG = "127.0.0.1:5000/asr/tuned:v2"
PACKAGE = f.PackagedModel("s3://models/models/tuned/v2/", "ab" * 32, 12345)
TRAINED = f.TrainingJobState(exists=True, succeeded=True, pods=1)
BUILDING = ib.ImageBuildState(exists=True, active=1, pods=1)
PUSHED = ib.ImageBuildState(exists=True, succeeded=True, pods=1,
                            message=json.dumps({"image": TAG, "digest": DIGEST}))
FAILED = ib.ImageBuildState(exists=True, failed_reason="BackoffLimitExceeded", pods=2,
                            message=json.dumps({"error": "build-image: `crane append` failed: UNAUTHORIZED"}))


def test_build_job_renders_placement_without_gpus_push_secret_and_labels() -> None:
    job = ib.render_build_job(OWNER, PACKAGE.uri, PACKAGE.sha256, "127.0.0.1:5000/senseops/runtime-base:1")
    assert job["metadata"]["name"] == "j-image"
    assert job["metadata"]["ownerReferences"][0] | {} == {
        "apiVersion": "senseops.dev/v1alpha1", "kind": "FineTuneJob", "name": "j", "uid": "u-1",
        "controller": True, "blockOwnerDeletion": True}
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert pod["priorityClassName"] == "training"
    container = pod["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["image"] == SPEC["trainerImage"]
    args = container["args"]
    assert args[:3] == ["build-image", "--model-uri", PACKAGE.uri]
    assert args[args.index("--sha256") + 1] == PACKAGE.sha256 and args[args.index("--image") + 1] == TAG
    assert args[args.index("--base") + 1] == "127.0.0.1:5000/senseops/runtime-base:1"
    labels = dict(a.split("=", 1) for a, flag in zip(args[1:], args, strict=False) if flag == "--label")
    assert labels["dev.senseops.artifact.sha256"] == PACKAGE.sha256
    assert labels["dev.senseops.finetunejob"] == "ns/j" and labels["dev.senseops.base-model"] == "base"
    assert labels["org.opencontainers.image.version"] == "v2" and labels["dev.senseops.model.name"] == "tuned"
    # The push Secret is a docker config for the builder only: mounted, never read by the operator.
    secret = next(v for v in pod["volumes"] if v["name"] == "registry-credentials")["secret"]
    assert secret == {"secretName": "push", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
    assert {"name": "DOCKER_CONFIG", "value": ib.REGISTRY_SECRET_DIR} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "store"}}]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["automountServiceAccountToken"] is False


def test_build_job_without_push_secret_or_base() -> None:
    spec = {**SPEC, "image": {"registry": "127.0.0.1:5000", "repository": "asr/tuned"}}
    job = ib.render_build_job({**OWNER, "spec": spec}, PACKAGE.uri, PACKAGE.sha256, None)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "--base" not in container["args"]
    assert not any(e["name"] == "DOCKER_CONFIG" for e in container["env"])


@pytest.mark.parametrize(("message", "expected"), [
    (json.dumps({"digest": DIGEST, "reference": "r@" + DIGEST}), ib.BuildReport(DIGEST, "r@" + DIGEST)),
    (json.dumps({"error": "UNAUTHORIZED"}), ib.BuildReport(error="UNAUTHORIZED")),
    ("Traceback ...\nOSError: disk full", ib.BuildReport(error="Traceback ...\nOSError: disk full")),
    ("", ib.BuildReport()),
    ("[1, 2]", ib.BuildReport(error="[1, 2]")),
])
def test_parse_report(message: str, expected: ib.BuildReport) -> None:
    assert ib.parse_report(message) == expected


@pytest.mark.parametrize(("name", "build", "registry", "outcome", "says"), [
    ("no job yet", ib.ImageBuildState(exists=False), None, "create", "building"),
    ("running", BUILDING, None, "wait", "building"),
    ("running again", replace(BUILDING, pods=2), None, "wait", "attempt 2"),
    ("failed with the registry's error", FAILED, None, "failed", "UNAUTHORIZED"),
    ("failed without a message", replace(FAILED, message=""), None, "failed", "BackoffLimitExceeded"),
    ("done, no digest reported", replace(PUSHED, message="ok"), None, "failed", "no digest"),
    ("done, registry not asked yet", PUSHED, None, "wait", "reading its digest"),
    ("registry unreachable", PUSHED, ib.RegistryDigest(None, "connection refused", transient=True), "wait",
     "connection refused"),
    ("registry has no such tag", PUSHED, ib.RegistryDigest(None, "no such manifest"), "failed", "no such manifest"),
    ("tag overwritten", PUSHED, ib.RegistryDigest(OTHER), "failed", "overwritten"),
    ("verified", PUSHED, ib.RegistryDigest(DIGEST), "verified", DIGEST),
])
def test_image_step(name: str, build: ib.ImageBuildState, registry: ib.RegistryDigest | None, outcome: str,
                    says: str) -> None:
    step = ib.image_step(build, registry, TAG)
    assert (step.outcome, says in step.message) == (outcome, True), step.message


def obs(**changes: Any) -> f.FineTuneJobObservation:
    base = f.FineTuneJobObservation(generation=1, name="j", model_phases={"base": "Ready", "tuned": None},
                                    base_model_uri="s3://models/models/base/v1/", job=TRAINED, package=PACKAGE)
    return replace(base, **changes)


@pytest.mark.parametrize(("name", "changes", "status", "stage", "actions", "reason"), [
    ("packaged: start the image build", {}, {"stage": "Packaging"}, "BuildingImage", [f.CreateImageBuildJob], None),
    ("build running", {"image_build": BUILDING}, {"stage": "BuildingImage"}, "BuildingImage", [], None),
    ("push refused", {"image_build": FAILED}, {"stage": "BuildingImage"}, "Failed", [], "ImageBuildFailed"),
    ("pushed, registry down", {"image_build": PUSHED,
                               "registry_digest": ib.RegistryDigest(None, "down", transient=True)},
     {"stage": "BuildingImage"}, "BuildingImage", [], None),
    ("pushed, digest mismatch", {"image_build": PUSHED, "registry_digest": ib.RegistryDigest(OTHER)},
     {"stage": "BuildingImage"}, "Failed", [], "ImageBuildFailed"),
    ("verified: publish with the image", {"image_build": PUSHED, "registry_digest": ib.RegistryDigest(DIGEST)},
     {"stage": "BuildingImage"}, "BuildingImage", [f.CreateModel], None),
    ("image recorded, model exists", {"model_phases": {"base": "Ready", "tuned": "Pending"},
                                      "output_model_owner": "j"},
     {"stage": "BuildingImage", "image": {"digest": DIGEST}}, "Succeeded", [], "ModelPublished"),
    ("image recorded, build Job gone after its TTL", {"model_phases": {"base": "Ready", "tuned": None}},
     {"stage": "BuildingImage", "image": {"digest": DIGEST}}, "BuildingImage", [f.CreateModel], None),
    ("output taken: nothing is built", {"model_phases": {"base": "Ready", "tuned": "Ready"}},
     {"stage": "Packaging"}, "Failed", [], "OutputExists"),
])
def test_stages_with_an_image(name: str, changes: dict[str, Any], status: dict[str, Any], stage: str,
                              actions: list[type], reason: str | None) -> None:
    decision = f.decide(SPEC, status, obs(**changes), NOW)
    assert decision.status["stage"] == stage, decision.status["message"]
    assert [type(a) for a in decision.actions] == actions
    if reason is not None:
        assert find_condition(decision.status["conditions"], "Succeeded")["reason"] == reason  # type: ignore[index]


def test_verified_image_goes_into_status_and_the_model() -> None:
    decision = f.decide(SPEC, {"stage": "BuildingImage"},
                        obs(image_build=PUSHED, registry_digest=ib.RegistryDigest(DIGEST)), NOW)
    assert decision.status["image"] == {"tag": TAG, "digest": DIGEST, "reference": f"127.0.0.1:5000/asr/tuned@{DIGEST}"}
    model = decision.actions[0]
    assert isinstance(model, f.CreateModel)
    assert model.spec["image"] == {"reference": f"127.0.0.1:5000/asr/tuned@{DIGEST}", "pullSecret": "push"}
    assert find_condition(decision.status["conditions"], "ImageBuilt")["status"] == "True"  # type: ignore[index]


def test_push_failure_names_the_registry_error() -> None:
    decision = f.decide(SPEC, {"stage": "BuildingImage"}, obs(image_build=FAILED), NOW)
    assert "UNAUTHORIZED" in decision.status["message"]
    assert any(e.reason == "ImageBuildFailed" and e.type == "Warning" for e in decision.events)


def test_without_spec_image_no_build() -> None:
    spec = {k: v for k, v in SPEC.items() if k != "image"}
    decision = f.decide(spec, {"stage": "Packaging"}, obs(), NOW)
    assert [type(a) for a in decision.actions] == [f.CreateModel]
    assert "image" not in decision.actions[0].spec  # type: ignore[union-attr]
