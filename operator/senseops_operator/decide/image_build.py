"""The model image build of a FineTuneJob (``spec.image``), as pure data and decisions.

After packaging, a second Job runs ``senseops_trainer build-image`` in the trainer image: it downloads the
packaged model (checked against its manifest and the published sha256), appends it under
``/models/{name}/{version}/`` to the configured runtime base image with crane, sets OCI labels, pushes to
``registry/repository:version`` with the push Secret mounted as a docker config (the operator never reads
that Secret), and reports the pushed digest as its termination message. The operator then reads the digest
back from the registry with its own credentials and records ``registry/repository@sha256:…`` only when both
agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from senseops_operator import constants as c
from senseops_operator.decide.training_job import (
    EXIT_BAD_SETTINGS,
    LABEL_FINETUNEJOB,
    STORE_SECRET_DIR,
    child_name,
    owner_reference,
    placement_fields,
)

BUILD_CONTAINER = "build"
BUILD_SUFFIX = "image"
REGISTRY_SECRET_DIR = "/var/run/secrets/senseops/registry"
DOCKERCONFIG_KEY = ".dockerconfigjson"  # the key of a kubernetes.io/dockerconfigjson Secret
WORK_DIR = "/work"
BUILD_BACKOFF_LIMIT = 1
BUILD_DEADLINE_SECONDS = 3600
BUILD_CPU = "1"
BUILD_MEMORY = "2Gi"
LABEL_PREFIX = "dev.senseops"


@dataclass(frozen=True)
class ImageBuildState:
    """The image build Job as observed (``exists=False`` before it is created)."""

    exists: bool
    active: int = 0
    succeeded: bool = False
    failed_reason: str | None = None  # the Job's Failed condition reason
    message: str = ""  # termination message of the last build container that ended
    pods: int = 0


@dataclass(frozen=True)
class RegistryDigest:
    """What the registry said the pushed tag names: a digest, or an error (transient: look again later)."""

    digest: str | None
    error: str | None = None
    transient: bool = False


@dataclass(frozen=True)
class BuildReport:
    """The build container's termination message, parsed."""

    digest: str | None = None
    reference: str | None = None
    error: str | None = None


def build_job_name(job: str) -> str:
    return child_name(job, BUILD_SUFFIX)


def model_version(job: str, spec: Mapping[str, Any]) -> str:
    return str(spec["output"].get("version") or job)


def image_tag(job: str, spec: Mapping[str, Any]) -> str:
    """``registry/repository:version``: deterministic, so a retried build pushes to the same tag."""
    target = spec["image"]
    return f"{target['registry']}/{target['repository']}:{model_version(job, spec)}"


def image_repository(spec: Mapping[str, Any]) -> str:
    target = spec["image"]
    return f"{target['registry']}/{target['repository']}"


def model_path_in_image(name: str, version: str) -> str:
    """Where a model image holds the model's files (the trainer's build-image writes them there; a Rollout
    points the runtime at them)."""
    return f"/models/{name}/{version}/"


def image_labels(job: str, namespace: str, spec: Mapping[str, Any], sha256: str, artifact_uri: str,
                 base_image: str | None) -> dict[str, str]:
    """OCI annotations-as-labels (``org.opencontainers.image.*``) and SenseOps lineage (``dev.senseops.*``)."""
    name, version = spec["output"]["modelName"], model_version(job, spec)
    labels = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.description": f"SenseVoice model {name} {version} fine-tuned from "
                                                f"{spec['baseModel']['name']} by FineTuneJob {namespace}/{job}",
        "org.opencontainers.image.vendor": "SenseOps",
        f"{LABEL_PREFIX}.model.name": name,
        f"{LABEL_PREFIX}.model.version": version,
        f"{LABEL_PREFIX}.model.path": model_path_in_image(name, version),
        f"{LABEL_PREFIX}.artifact.sha256": sha256,
        f"{LABEL_PREFIX}.artifact.uri": artifact_uri,
        f"{LABEL_PREFIX}.base-model": spec["baseModel"]["name"],
        f"{LABEL_PREFIX}.finetunejob": f"{namespace}/{job}",
    }
    if base_image:
        labels["org.opencontainers.image.base.name"] = base_image
    return labels


def render_build_job(owner: Mapping[str, Any], artifact_uri: str, sha256: str,
                     base_image: str | None) -> dict[str, Any]:
    """The Job that builds and pushes the model image (same placement as training, no GPUs)."""
    meta, spec = owner["metadata"], owner["spec"]
    name, namespace = meta["name"], meta["namespace"]
    labels = {LABEL_FINETUNEJOB: name, "app.kubernetes.io/name": "senseops-image-builder",
              "app.kubernetes.io/part-of": "senseops"}
    version = model_version(name, spec)
    args = ["build-image", "--model-uri", artifact_uri, "--sha256", sha256, "--image", image_tag(name, spec),
            "--name", spec["output"]["modelName"], "--version", version, "--workdir", f"{WORK_DIR}/image"]
    if base_image:
        args += ["--base", base_image]
    for key, value in sorted(image_labels(name, namespace, spec, sha256, artifact_uri, base_image).items()):
        args += ["--label", f"{key}={value}"]
    env: list[dict[str, Any]] = []
    env_from: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "work", "mountPath": WORK_DIR}]
    push_secret = spec["image"].get("pushSecret")
    if push_secret:
        volumes.append({"name": "registry-credentials", "secret": {
            "secretName": push_secret, "items": [{"key": DOCKERCONFIG_KEY, "path": "config.json"}]}})
        mounts.append({"name": "registry-credentials", "mountPath": REGISTRY_SECRET_DIR, "readOnly": True})
        env.append({"name": "DOCKER_CONFIG", "value": REGISTRY_SECRET_DIR})
    store_secret = spec.get("storeSecret")
    if store_secret:
        volumes.append({"name": "store-credentials", "secret": {"secretName": store_secret}})
        mounts.append({"name": "store-credentials", "mountPath": STORE_SECRET_DIR, "readOnly": True})
        env.append({"name": "SENSEOPS_STORAGE_SECRET_DIR", "value": STORE_SECRET_DIR})
        env_from.append({"secretRef": {"name": store_secret}})
    resources = {"cpu": BUILD_CPU, "memory": BUILD_MEMORY}
    placement = spec.get("placement") or {}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # the builder talks to the store and the registry, not the API
        "containers": [{
            "name": BUILD_CONTAINER,
            "image": spec.get("trainerImage", c.DEFAULT_TRAINER_IMAGE),
            "args": args,
            "env": env,
            "envFrom": env_from,
            "resources": {"requests": dict(resources), "limits": dict(resources)},
            "volumeMounts": mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }],
        "volumes": volumes,
    }
    pod_spec.update(placement_fields(placement))
    run_policy = spec.get("runPolicy") or {}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": build_job_name(name), "namespace": namespace, "labels": labels,
                     "ownerReferences": [owner_reference(owner)]},
        "spec": {
            "backoffLimit": BUILD_BACKOFF_LIMIT,
            "activeDeadlineSeconds": BUILD_DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": int(run_policy.get("ttlSecondsAfterFinished",
                                                          c.DEFAULT_TTL_AFTER_FINISHED_SECONDS)),
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": BUILD_CONTAINER, "operator": "In",
                                                      "values": [EXIT_BAD_SETTINGS]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def parse_report(message: str) -> BuildReport:
    """The builder writes one JSON object; anything else (a log tail after a crash) is the error text."""
    text = message.strip()
    if not text:
        return BuildReport()
    try:
        data = json.loads(text)
    except ValueError:
        return BuildReport(error=text[-1000:])
    if not isinstance(data, dict):
        return BuildReport(error=text[-1000:])
    digest = data.get("digest")
    return BuildReport(digest=digest if isinstance(digest, str) else None,
                       reference=data.get("reference") if isinstance(data.get("reference"), str) else None,
                       error=str(data["error"]) if data.get("error") else None)


@dataclass(frozen=True)
class ImageStep:
    """Where the image build stands: ``outcome`` is one of create, wait, failed, verified."""

    outcome: str
    message: str
    digest: str | None = None


def image_step(build: ImageBuildState, registry: RegistryDigest | None, tag: str) -> ImageStep:
    """Next step of the image build from the build Job and the registry's answer (table-tested)."""
    if not build.exists:
        return ImageStep("create", f"building model image {tag}")
    report = parse_report(build.message)
    if build.failed_reason is not None:
        why = report.error or f"the build Job failed ({build.failed_reason}) without a message"
        return ImageStep("failed", f"image build for {tag} failed: {why}")
    if not build.succeeded:
        attempt = f", attempt {build.pods}" if build.pods > 1 else ""
        return ImageStep("wait", f"building model image {tag}{attempt}")
    if report.digest is None:
        return ImageStep("failed", f"the image build for {tag} finished but reported no digest "
                                   f"(termination message {build.message[:200]!r})")
    if registry is None:
        return ImageStep("wait", f"pushed {tag}; reading its digest back from the registry")
    if registry.digest is None:
        if registry.transient:
            return ImageStep("wait", f"pushed {tag}; cannot read its digest back yet: {registry.error}")
        return ImageStep("failed", f"pushed {tag} but the registry does not confirm it: {registry.error}")
    if registry.digest != report.digest:
        return ImageStep("failed", f"{tag}: the registry holds {registry.digest}, the build pushed {report.digest}; "
                                   "the tag was overwritten by another push — use a new output.version")
    return ImageStep("verified", f"model image pushed and verified: {tag} is {registry.digest}", registry.digest)
