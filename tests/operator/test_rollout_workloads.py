"""What the Rollout writes to serve a model: candidate Deployment/Service, the stable model change, and how
ready pods are read back (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from senseops_operator.decide.image_build import LABEL_PREFIX, image_labels
from senseops_operator.decide.rollout_workloads import (
    IMAGE_MOUNT,
    MODEL_VOLUME,
    candidate_deployment,
    candidate_service,
    drain_grace_seconds,
    ready_replicas_of,
    serving_model,
    stable_model_patch,
)
from senseops_operator.models.asrmodel import ASRModelSpec, ASRModelStatus
from tests.procnode.workloads import runtime_deployment

OWNER = {"apiVersion": "senseops.dev/v1alpha1", "kind": "Rollout", "name": "r", "uid": "u", "controller": True}
SHA = "ab" * 32
V2 = ASRModelSpec.model_validate({"version": "2", "artifact": {"uri": "s3://models/m/v2/", "sha256": SHA}})
DIGEST = "sha256:" + "cd" * 32
V2_IMAGE = ASRModelStatus.model_validate({"image": {"reference": "reg:5000/models/m:v2", "digest": DIGEST}})
TARGET, STABLE_SVC = runtime_deployment("ns", None, name="asr", version="v1", replicas=4)
ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT_MANIFEST = yaml.safe_load((ROOT / "manifests" / "runtime" / "deployment.yaml").read_text())


def env(obj: dict[str, Any]) -> dict[str, str]:
    c = obj["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in c["env"]}


def test_candidate_deployment_runs_the_candidate_model_on_its_own_pods() -> None:
    d = candidate_deployment(TARGET, "r", OWNER, "v2", V2, None, 2)
    assert d["metadata"]["name"] == "r-canary" and d["metadata"]["ownerReferences"] == [OWNER]
    assert d["spec"]["replicas"] == 2
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == "v2" and labels["app.kubernetes.io/instance"] == "r-canary"
    assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    e = env(d)
    assert (e["SENSEOPS_MODEL_URI"], e["SENSEOPS_MODEL_SHA256"], e["SENSEOPS_MODEL_VERSION"]) == (
        "s3://models/m/v2/", SHA, "v2")
    assert e["SENSEOPS_JWT_HS256_SECRET_FILE"]  # everything else of the template is kept
    # the stable Service's selector does not match candidate pods
    assert not STABLE_SVC["spec"]["selector"].items() <= labels.items()
    assert env(TARGET)["SENSEOPS_MODEL_VERSION"] == "v1"  # the input is not modified


@pytest.mark.parametrize(
    ("name", "service_selector"),
    [("selector with the instance label", {"app.kubernetes.io/instance": "asr"}),
     ("selector with the name only (manifests/runtime)", {"app.kubernetes.io/name": "senseops-runtime"}),
     ("empty selector list", {})],
)
def test_stable_selectors_never_match_candidate_pods(name: str, service_selector: dict[str, str]) -> None:
    target = {**TARGET, "spec": {**TARGET["spec"], "selector": {"matchLabels": {"app.kubernetes.io/name":
                                                                                 "senseops-runtime"}}}}
    d = candidate_deployment(target, "r", OWNER, "v2", V2, None, 1, [service_selector])
    labels = d["spec"]["template"]["metadata"]["labels"]
    for selector in (service_selector, target["spec"]["selector"]["matchLabels"]):
        assert not (selector and selector.items() <= labels.items())
    assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels["app.kubernetes.io/version"] == "v2"


def test_candidate_with_a_model_image_mounts_it_by_digest() -> None:
    d = candidate_deployment(TARGET, "r", OWNER, "v2", V2, V2_IMAGE, 1)
    pod = d["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == MODEL_VOLUME)
    assert volume == {"name": MODEL_VOLUME, "image": {"reference": f"reg:5000/models/m:v2@{DIGEST}",
                                                      "pullPolicy": "IfNotPresent"}}
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": MODEL_VOLUME, "mountPath": IMAGE_MOUNT, "readOnly": True} in mounts
    assert env(d)["SENSEOPS_MODEL_URI"] == f"file://{IMAGE_MOUNT}/models/v2/2/"
    # the template's own volumes stay as they were (the test workload's hostPath "model")
    assert next(v for v in pod["volumes"] if v["name"] == "model") == \
        next(v for v in TARGET["spec"]["template"]["spec"]["volumes"] if v["name"] == "model")


def test_a_model_image_is_read_where_the_image_build_put_its_files() -> None:
    # Regression (found by the whole-loop demo): the runtime was pointed at /models/models while a
    # FineTuneJob's image holds the files under models/{name}/{version}/; the pod never became ready.
    spec = {"output": {"modelName": "tuned-1", "version": "retrain-1"}, "baseModel": {"name": "base"}}
    labels = image_labels("retrain-1", "ns", spec, SHA, "s3://bk/models/tuned-1/retrain-1/", None)
    model = ASRModelSpec.model_validate({"version": "retrain-1",
                                         "artifact": {"uri": "s3://bk/models/tuned-1/retrain-1/", "sha256": SHA}})
    d = candidate_deployment(TARGET, "r", OWNER, "tuned-1", model, V2_IMAGE, 1)
    mounts = {m["name"]: m["mountPath"] for m in d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert env(d)["SENSEOPS_MODEL_URI"] == f"file://{mounts[MODEL_VOLUME]}{labels[f'{LABEL_PREFIX}.model.path']}"


@pytest.mark.parametrize("manifest", ["test workload (hostPath volume 'model')", "manifests/runtime (no model volume)"])
def test_moving_the_stable_deployment_to_a_model_image_adds_its_own_volume_and_mount(manifest: str) -> None:
    # Regression (found by the whole-loop demo): the stable patch merged `image` into the Deployment's own
    # "model" volume (hostPath) — the API refused it (422: one volume type only) and promotion never ended;
    # and a Deployment without a "model" mount (manifests/runtime) would never have mounted the image.
    target = TARGET if manifest.startswith("test") else DEPLOYMENT_MANIFEST
    p = stable_model_patch(target, "v2", V2, V2_IMAGE)
    pod = p["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": MODEL_VOLUME, "image": {"reference": f"reg:5000/models/m:v2@{DIGEST}",
                                                                "pullPolicy": "IfNotPresent"}}]
    container = pod["containers"][0]
    assert container["volumeMounts"] == [{"name": MODEL_VOLUME, "mountPath": IMAGE_MOUNT, "readOnly": True}]
    assert {e["name"]: e["value"] for e in container["env"]}["SENSEOPS_MODEL_URI"] == \
        f"file://{IMAGE_MOUNT}/models/v2/2/"
    assert "imagePullSecrets" not in pod  # V2 names no pull secret
    # its volume name and mount path are free in the Deployment it is applied to
    template = target["spec"]["template"]["spec"]
    assert MODEL_VOLUME not in {v["name"] for v in template.get("volumes") or []}
    assert IMAGE_MOUNT not in {m["mountPath"] for c in template["containers"] for m in c.get("volumeMounts") or []}


def test_candidate_service_selects_only_candidate_pods() -> None:
    s = candidate_service(STABLE_SVC, "r", OWNER)
    pods = candidate_deployment(TARGET, "r", OWNER, "v2", V2, None, 1)["spec"]["template"]["metadata"]["labels"]
    assert s["spec"]["selector"].items() <= pods.items() and s["spec"]["ports"] == STABLE_SVC["spec"]["ports"]


def test_stable_patch_owns_only_the_model_fields() -> None:
    p = stable_model_patch(TARGET, "v2", V2, None)
    assert p["metadata"] == {"name": "asr", "namespace": "ns"}
    assert p["spec"] == {"template": {"metadata": {"labels": {"app.kubernetes.io/version": "v2"}}, "spec": {
        "containers": [{"name": "runtime", "env": [
            {"name": "SENSEOPS_MODEL_URI", "value": "s3://models/m/v2/"},
            {"name": "SENSEOPS_MODEL_SHA256", "value": SHA}, {"name": "SENSEOPS_MODEL_VERSION", "value": "v2"}]}]}}}


def deployment(gen: int, observed: int, replicas: int, updated: int, available: int, ready: int,
               version: str = "v2", total: int | None = None) -> dict[str, Any]:
    return {"metadata": {"generation": gen},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": {"app.kubernetes.io/version": version}}}},
            "status": {"observedGeneration": observed, "replicas": total if total is not None else replicas,
                       "updatedReplicas": updated, "availableReplicas": available, "readyReplicas": ready}}


@pytest.mark.parametrize(
    ("name", "obj", "model"),
    [("missing", None, None), ("settled", deployment(2, 2, 4, 4, 4, 4), "v2"),
     ("controller behind", deployment(3, 2, 4, 4, 4, 4), None), ("rolling", deployment(2, 2, 4, 2, 4, 4), None),
     ("surge pods still there", deployment(2, 2, 4, 4, 4, 5, total=5), None),
     ("short of capacity", deployment(2, 2, 4, 4, 3, 3), None)],
)
def test_serving_model(name: str, obj: dict[str, Any] | None, model: str | None) -> None:
    assert serving_model(obj) == model


@pytest.mark.parametrize(
    ("name", "obj", "ready"),
    [("missing", None, 0), ("ready", deployment(1, 1, 2, 2, 2, 2), 2),
     ("other model in the template", deployment(1, 1, 2, 2, 2, 2, version="v3"), 0),
     ("old pods ready, new not", deployment(2, 2, 2, 0, 2, 2), 0),
     ("controller behind", deployment(2, 1, 2, 2, 2, 2), 0)],
)
def test_ready_replicas_of(name: str, obj: dict[str, Any] | None, ready: int) -> None:
    assert ready_replicas_of(obj, "v2") == ready


def _pod(grace: int | None, pre_stop_s: int | None, drain_env: str | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "runtime", "env": [{"name": "HOME", "value": "/tmp"}]}
    if pre_stop_s is not None:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop_s}}}
    if drain_env is not None:
        container["env"].append({"name": "SENSEOPS_DRAIN_TIMEOUT_S", "value": drain_env})
    spec: dict[str, Any] = {"containers": [container]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return spec


@pytest.mark.parametrize(
    ("name", "grace", "pre_stop_s", "drain_env", "need", "candidate_grace"),
    [
        ("the manifests: 60 s is plenty for 5 + 20 + 10", 60, 5, "20", 35, 60),
        ("no grace in the template: Kubernetes' 30 s is short of 5 + 20 + 10", None, 5, "20", 35, 35),
        ("the runtime's default drain when the env is unset", 15, 3, None, 33, 33),
        ("a short drain fits a short grace", 15, 3, "2", 15, 15),
        ("fractional drain rounds up", 5, None, "2.5", 13, 13),
        ("not a literal number: the default", 10, None, "$(DRAIN)", 30, 30),
        ("nonsense values: the default", 10, None, "inf", 30, 30),
    ],
)
def test_candidate_grace_fits_the_runtime_drain(
    name: str, grace: int | None, pre_stop_s: int | None, drain_env: str | None, need: int, candidate_grace: int
) -> None:
    pod = _pod(grace, pre_stop_s, drain_env)
    assert drain_grace_seconds(pod) == need, name
    target = {"metadata": {"name": "asr", "namespace": "ns"},
              "spec": {"selector": {"matchLabels": {"app": "asr"}},
                       "template": {"metadata": {"labels": {"app": "asr"}}, "spec": pod}}}
    d = candidate_deployment(target, "r", OWNER, "v2", V2, None, 1)
    assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == candidate_grace, name
    assert pod.get("terminationGracePeriodSeconds") == grace, "the target's template is not modified"


def test_stable_patch_leaves_the_grace_period_to_git() -> None:
    patch = stable_model_patch(TARGET, "v2", V2, None)
    assert "terminationGracePeriodSeconds" not in patch["spec"]["template"]["spec"]


def test_moving_the_stable_deployment_to_a_private_model_image_pulls_with_its_secret() -> None:
    # Regression (found by the whole-loop demo): the candidate pulled with the model's pullSecret, the stable
    # Deployment did not (401 from the registry) and promotion never ended.
    private = ASRModelSpec.model_validate({"version": "2", "artifact": {"uri": "s3://models/m/v2/", "sha256": SHA},
                                           "image": {"reference": f"reg:5000/models/m@{DIGEST}", "pullSecret": "push"}})
    stable = stable_model_patch(TARGET, "v2", private, None)["spec"]["template"]["spec"]
    candidate = candidate_deployment(TARGET, "r", OWNER, "v2", private, None, 1)["spec"]["template"]["spec"]
    assert stable["imagePullSecrets"] == candidate["imagePullSecrets"] == [{"name": "push"}]
