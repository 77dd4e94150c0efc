"""What the Rollout writes to serve a model (pure): the candidate Deployment and Service built from the target
Deployment, the stable Deployment's model fields, and how to read "ready pods serving model X" back.

The model reaches the runtime through the environment it already reads (`SENSEOPS_MODEL_URI`,
`SENSEOPS_MODEL_SHA256`, `SENSEOPS_MODEL_VERSION`; the runtime verifies the digest before serving); when the
ASRModel has an image with a digest, the `model` volume becomes an image volume of that digest instead
(Kubernetes image volumes, GA in 1.36) and the URI points into it.

Candidate pods get their own `app.kubernetes.io/instance` so the stable Service (whose selector normally
includes it) never selects them; `app.kubernetes.io/version` carries the model name on every pod, so each
metric series tells the two sides apart.

A pod that loses traffic (the candidate after an abort or a promotion) is deleted and drains: it finishes
its streams' utterances, sends their finals and closes them with 1012 so clients resume on the other side.
The candidate's grace period is raised to fit that drain (`drain_grace_seconds`) when the template's is
shorter; the stable Deployment's grace belongs to Git and is left alone.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from senseops_operator import constants as c
from senseops_operator.decide.image_build import model_path_in_image
from senseops_operator.models.asrmodel import ASRModelSpec, ASRModelStatus

VERSION_LABEL = "app.kubernetes.io/version"
INSTANCE_LABEL = "app.kubernetes.io/instance"
ROLLOUT_LABEL = "senseops.dev/rollout"
MODEL_ENV = ("SENSEOPS_MODEL_URI", "SENSEOPS_MODEL_SHA256", "SENSEOPS_MODEL_VERSION")
# A model image is mounted as a volume of its own (never merged into a volume the Deployment's owner
# declared: server-side apply would add `image` beside its hostPath/emptyDir, which the API rejects), at a
# path of its own, whether or not the Deployment has any model volume.
MODEL_VOLUME = "senseops-model-image"
IMAGE_MOUNT = "/senseops/model-image"  # where the model image volume is mounted in the runtime container


def image_model_uri(name: str, version: str) -> str:
    """Where a model image's files are in the runtime container: the image is mounted at ``IMAGE_MOUNT``."""
    return f"file://{IMAGE_MOUNT}{model_path_in_image(name, version)}"


def canary_name(rollout: str) -> str:
    return f"{rollout}-canary"


def model_env(name: str, spec: ASRModelSpec, status: ASRModelStatus | None) -> dict[str, str]:
    """The runtime's model settings for one ASRModel."""
    image = _image_ref(spec, status)
    uri = image_model_uri(name, spec.version) if image else spec.artifact.uri
    return {"SENSEOPS_MODEL_URI": uri, "SENSEOPS_MODEL_SHA256": spec.artifact.sha256, "SENSEOPS_MODEL_VERSION": name}


def _image_ref(spec: ASRModelSpec, status: ASRModelStatus | None) -> str | None:
    """The model image by digest (status first: what was built and pushed), or None to use the store."""
    if status is not None and status.image is not None and status.image.reference and status.image.digest:
        return f"{status.image.reference.split('@')[0]}@{status.image.digest}"
    if spec.image is not None and "@sha256:" in spec.image.reference:
        return spec.image.reference
    return None


def _with_model(pod_spec: dict[str, Any], name: str, spec: ASRModelSpec, status: ASRModelStatus | None) -> None:
    env = model_env(name, spec, status)
    containers = pod_spec.get("containers") or []
    if not containers:
        raise ValueError("the target Deployment's pod template has no containers")
    runtime = next((c for c in containers if c.get("name") == "runtime"), containers[0])
    kept = [e for e in runtime.get("env") or [] if e.get("name") not in MODEL_ENV]
    runtime["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    image = _image_ref(spec, status)
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") != MODEL_VOLUME]
    mounts = [m for m in runtime.get("volumeMounts") or [] if m.get("name") != MODEL_VOLUME]
    if image:
        volumes.append({"name": MODEL_VOLUME, "image": {"reference": image, "pullPolicy": "IfNotPresent"}})
        mounts.append({"name": MODEL_VOLUME, "mountPath": IMAGE_MOUNT, "readOnly": True})
        if spec.image is not None and spec.image.pull_secret:
            secrets = [s for s in pod_spec.get("imagePullSecrets") or [] if s.get("name") != spec.image.pull_secret]
            pod_spec["imagePullSecrets"] = [*secrets, {"name": spec.image.pull_secret}]
    pod_spec["volumes"], runtime["volumeMounts"] = volumes, mounts


def candidate_labels(template_labels: dict[str, str], rollout: str, model: str,
                     stable_selectors: list[dict[str, str]]) -> dict[str, str]:
    """Pod labels for the candidate: the template's, with its own instance and version, and changed wherever
    a stable selector (the stable Service's, the target Deployment's) would otherwise match them, so the
    stable side never selects a candidate pod (e.g. a Service selecting only `app.kubernetes.io/name`)."""
    name = canary_name(rollout)
    labels = {**template_labels, INSTANCE_LABEL: name, VERSION_LABEL: model, ROLLOUT_LABEL: rollout}
    for selector in stable_selectors:
        if selector and selector.items() <= labels.items():
            for key, value in selector.items():
                labels[key] = f"{value[:MAX_LABEL - len(CANARY_SUFFIX)]}{CANARY_SUFFIX}"
    return labels


MAX_LABEL = 63
CANARY_SUFFIX = "-canary"
DRAIN_TIMEOUT_ENV = "SENSEOPS_DRAIN_TIMEOUT_S"
KUBERNETES_DEFAULT_GRACE_SECONDS = 30


def drain_grace_seconds(pod_spec: dict[str, Any]) -> int:
    """The grace period a runtime pod needs to drain: its longest preStop sleep + the runtime's drain timeout
    (its `SENSEOPS_DRAIN_TIMEOUT_S`, or the runtime's default when unset or not a literal number) + a margin
    for the server's own shutdown."""
    need = 0
    for container in pod_spec.get("containers") or []:
        sleep = ((((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds") or 0)
        drain: float = c.RUNTIME_DRAIN_TIMEOUT_SECONDS
        for item in container.get("env") or []:
            if item.get("name") == DRAIN_TIMEOUT_ENV:
                drain = _seconds(item.get("value")) or drain
        need = max(need, int(sleep) + math.ceil(drain) + c.DRAIN_GRACE_MARGIN_SECONDS)
    return need


def _seconds(value: object) -> float | None:
    """A literal, finite, positive number of seconds, or None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def with_drain_grace(pod_spec: dict[str, Any]) -> None:
    """Raise `terminationGracePeriodSeconds` (in place) to what the drain needs; a longer one is kept."""
    current = pod_spec.get("terminationGracePeriodSeconds", KUBERNETES_DEFAULT_GRACE_SECONDS)
    pod_spec["terminationGracePeriodSeconds"] = max(int(current), drain_grace_seconds(pod_spec))


def candidate_deployment(target: dict[str, Any], rollout: str, owner: dict[str, Any], model: str,
                         model_spec: ASRModelSpec, model_status: ASRModelStatus | None, replicas: int,
                         stable_selectors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The candidate Deployment: the target's pod template with the candidate model, owned by the Rollout."""
    name = canary_name(rollout)
    template = copy.deepcopy((target.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    target_selector = ((target.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = candidate_labels(meta.get("labels") or {}, rollout, model, [target_selector, *(stable_selectors or [])])
    meta["labels"] = labels
    _with_model(template.setdefault("spec", {}), model, model_spec, model_status)
    with_drain_grace(template["spec"])
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": (target.get("metadata") or {}).get("namespace"),
                     "labels": {ROLLOUT_LABEL: rollout}, "ownerReferences": [owner]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {INSTANCE_LABEL: name, ROLLOUT_LABEL: rollout}},
                 "template": template},
    }


def candidate_service(stable_service: dict[str, Any], rollout: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The candidate Service: the stable Service's ports, selecting only candidate pods."""
    name = canary_name(rollout)
    ports = [{k: v for k, v in p.items() if k != "nodePort"} for p in (stable_service.get("spec") or {}).get("ports")
             or []]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": (stable_service.get("metadata") or {}).get("namespace"),
                     "labels": {ROLLOUT_LABEL: rollout}, "ownerReferences": [owner]},
        "spec": {"selector": {INSTANCE_LABEL: name, ROLLOUT_LABEL: rollout}, "ports": ports},
    }


def stable_model_patch(target: dict[str, Any], model: str, model_spec: ASRModelSpec,
                       model_status: ASRModelStatus | None) -> dict[str, Any]:
    """The server-side-apply body that moves the stable Deployment onto `model`: only the fields the operator
    owns (the model env, the version label, the model volume); Git keeps everything else. A surge-first
    rolling update (the Deployment's own strategy) keeps capacity while the pods change."""
    template = copy.deepcopy((target.get("spec") or {}).get("template") or {})
    pod_spec = template.get("spec") or {}
    _with_model(pod_spec, model, model_spec, model_status)
    containers = pod_spec.get("containers") or []
    runtime = next((c for c in containers if c.get("name") == "runtime"), containers[0])
    container: dict[str, Any] = {"name": runtime["name"],
                                 "env": [e for e in runtime["env"] if e["name"] in MODEL_ENV]}
    spec: dict[str, Any] = {"containers": [container]}
    if _image_ref(model_spec, model_status):
        # Owned by the operator: a later apply without them (a model from the store) removes them again.
        container["volumeMounts"] = [m for m in runtime["volumeMounts"] if m.get("name") == MODEL_VOLUME]
        spec["volumes"] = [v for v in pod_spec["volumes"] if v.get("name") == MODEL_VOLUME]
        if model_spec.image is not None and model_spec.image.pull_secret:
            spec["imagePullSecrets"] = [{"name": model_spec.image.pull_secret}]
    meta = target.get("metadata") or {}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": {"template": {"metadata": {"labels": {VERSION_LABEL: model}}, "spec": spec}},
    }


def serving_model(deployment: dict[str, Any] | None) -> str | None:
    """The model every available pod of a Deployment runs: None while it rolls, is short of capacity or is
    missing."""
    if deployment is None:
        return None
    meta, spec, status = deployment.get("metadata") or {}, deployment.get("spec") or {}, deployment.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return None
    want = spec.get("replicas", 1)
    if status.get("updatedReplicas", 0) != want or status.get("availableReplicas", 0) < want \
            or status.get("replicas", 0) != want:
        return None
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    model = labels.get(VERSION_LABEL)
    return str(model) if model is not None else None


def ready_replicas_of(deployment: dict[str, Any] | None, model: str) -> int:
    """Ready pods of the candidate Deployment that run `model` (0 while its template runs another model or the
    controller has not seen the current generation)."""
    if deployment is None:
        return 0
    meta, spec, status = deployment.get("metadata") or {}, deployment.get("spec") or {}, deployment.get("status") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(VERSION_LABEL) != model or status.get("observedGeneration", 0) < meta.get("generation", 0):
        return 0
    return int(min(status.get("readyReplicas", 0), status.get("updatedReplicas", 0)))


def template_model(deployment: dict[str, Any] | None) -> str | None:
    """The model a Deployment's pod template asks for (its version label), rolled out or not."""
    labels = ((((deployment or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
    model = (labels or {}).get(VERSION_LABEL)
    return str(model) if model is not None else None
