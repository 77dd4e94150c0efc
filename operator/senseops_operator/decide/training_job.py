"""The training Job a FineTuneJob runs, rendered as pure data (issue: FineTuneJob).

One FineTuneJob owns one ConfigMap (the trainer's job file) and one Job, both with deterministic
names, so a retried reconcile or a restarted operator finds them instead of creating a second pair.
The pod-failure policy follows the trainer's exit codes (``senseops_trainer.cli``):

| exit | meaning | Job action |
| --- | --- | --- |
| 0 | every stage done | — (Complete) |
| 64 | bad settings | ``FailJob``: retrying cannot help |
| 3 | evaluation gate failed | ``FailJob``: the data said no |
| pod disrupted (``DisruptionTarget``) | eviction, preemption, drain | ``Ignore``: not counted |
| anything else | a stage crashed, the process was killed | ``Count``: retried, resumes from its checkpoint |

``resources.nodes > 1`` (the pattern Kubeflow Trainer and JobSet build on, in our own code): the Job is
Indexed with ``completions = parallelism = nodes``; a headless Service (``publishNotReadyAddresses``, so
names resolve before any pod is ready) selects the Job's pods, and the pods' ``subdomain`` is that Service,
so pod ``i`` is ``<job>-<i>.<service>``. The trainer runs the FunASR step under torchrun with c10d
rendezvous at ``<job>-0.<service>:29500`` and ``--node-rank`` from ``JOB_COMPLETION_INDEX``
(``senseops_trainer.distributed``). Retries are per index (``backoffLimitPerIndex`` = the run policy's
``backoffLimit``, ``maxFailedIndexes: 0``): one pod's crash breaks the rendezvous for every pod, so each
index spends one retry per failed attempt, which is what ``backoffLimit`` means for a single pod; an index
out of retries fails the Job at once, since training cannot finish without it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from senseops_operator import constants as c

# The trainer's exit codes (senseops_trainer.cli); the tests check the two stay equal.
EXIT_GATE_FAILED = 3
EXIT_BAD_SETTINGS = 64
TRAINER_CONTAINER = "trainer"
JOB_FILE_KEY = "job.yaml"
JOB_FILE_DIR = "/etc/senseops/job"
WORK_DIR = "/work"
STORE_SECRET_DIR = "/var/run/secrets/senseops/store"
LABEL_FINETUNEJOB = f"{c.GROUP}/finetunejob"
# The Job controller labels every pod with its Job's name; the workers Service selects on it.
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"
ANNOTATION_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
NODE_RANK_ENV = "JOB_COMPLETION_INDEX"  # senseops_trainer.distributed.NODE_RANK_ENV
RDZV_PORT = 29500  # senseops_trainer.distributed.RDZV_PORT
RDZV_PORT_NAME = "rendezvous"


def child_name(job_name: str, suffix: str) -> str:
    """Deterministic child names, kept within 63 characters."""
    base = job_name[: c.MAX_NAME_LENGTH - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


def trainer_job_file(name: str, spec: Mapping[str, Any], base_model_uri: str) -> dict[str, Any]:
    """The trainer's settings (``senseops_trainer.config``) from a FineTuneJob spec."""
    dataset = spec["dataset"]
    filters = dataset.get("filters") or {}
    held_out = dataset.get("heldOut") or {}
    hyper = spec.get("hyperparameters") or {}
    resources = spec.get("resources") or {}
    gate = spec.get("evaluationGate") or {}
    window = dataset.get("window") or {}
    golden_key = store_key(dataset["source"], held_out.get("goldenSetUri"))
    gpus = int(resources.get("gpus", 1))
    nodes = int(resources.get("nodes", 1))
    distributed: dict[str, Any] = {}
    if nodes > 1:
        distributed = {"nodes": nodes, "rdzv_endpoint": rendezvous_endpoint(name)}
    return {
        "store_uri": dataset["source"],
        "base_model": base_model_uri,
        "job_name": name,
        "dataset": {
            "anchor_ids": list(dataset["anchorIds"]),
            "since": window.get("start"),
            "until": window.get("end"),
            "min_hours": float(dataset.get("minHours", 3.0)),
            "golden_key": golden_key,
            "val_fraction": float(held_out.get("validationFraction", 0.1)),
        },
        "filters": {
            "min_confidence": float(filters.get("minConfidence", 0.8)),
            "min_duration_s": float(filters.get("minDurationSeconds", 1.0)),
            "max_duration_s": float(filters.get("maxDurationSeconds", 30.0)),
            "max_units_per_s": float(filters.get("maxCharsPerSecond", 12.0)),
            "stability_check": bool(filters.get("requireStableDecode", False)),
        },
        "train": {
            "lr": float(hyper.get("learningRate", c.DEFAULT_LEARNING_RATE)),
            "max_epoch": int(hyper.get("epochs", c.DEFAULT_EPOCHS)),
            "batch_tokens": int(hyper.get("batchSizeTokens", c.DEFAULT_BATCH_TOKENS)),
            "warmup_steps": int(hyper.get("warmupSteps", c.DEFAULT_WARMUP_STEPS)),
            "freeze_front_blocks": int(hyper.get("freezeEncoderLayers", 0)),
            "avg_nbest": int(hyper.get("averageCheckpoints", 1)),
            "save_every_steps": int(hyper.get("checkpointEverySteps", 0)),
            "seed": int(hyper.get("seed", 0)),
            "device": "cuda" if gpus > 0 else "cpu",
            "gpus": gpus,
            **distributed,
        },
        "gate": {
            "min_cer_improvement": float(gate.get("minImprovement", 0.0)),
            "gate_set": "golden" if golden_key else "val",
        },
        "output": {
            "name": spec["output"]["modelName"],
            "version": spec["output"].get("version") or name,
            "models_uri": spec["output"]["storeUri"],
            "export_onnx": True,
        },
    }


def state_uri(spec: Mapping[str, Any], namespace: str, name: str, uid: str) -> str:
    """Where the trainer mirrors its work directory so a retried pod resumes (``senseops_trainer.state_sync``).

    Under the output store (the Job's credentials reach it); the uid keeps a re-created FineTuneJob of the same
    name from resuming a stale run.
    """
    base = spec["output"]["storeUri"]
    base = base if base.endswith("/") else base + "/"
    return f"{base}runs/{namespace}/{name}-{uid[:8]}/state/"


def with_trainer_settings(job_file: dict[str, Any], settings: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``hyperparameters.trainerSettings`` (dotted keys, YAML values) on top of the rendered job file.

    Not validated here on purpose: the trainer knows its settings and refuses an unknown or invalid one with
    exit 64, which the pod-failure policy turns into a failed job with reason BadSettings.
    """
    out = copy.deepcopy(job_file)
    for dotted, raw in sorted(settings.items()):
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return out


def workers_service_name(job_name: str) -> str:
    """The headless Service that gives the training pods of a multi-node run their DNS names."""
    return child_name(job_name, "workers")


def rendezvous_endpoint(job_name: str) -> str:
    """``<job>-0.<service>:29500``: pod 0 of the Indexed Job hosts torchrun's c10d rendezvous."""
    return f"{child_name(job_name, 'train')}-0.{workers_service_name(job_name)}:{RDZV_PORT}"


def workers_service(owner: Mapping[str, Any]) -> dict[str, Any] | None:
    """The headless Service of a multi-node run (``resources.nodes > 1``), else ``None``."""
    meta = owner["metadata"]
    if int((owner["spec"].get("resources") or {}).get("nodes", 1)) <= 1:
        return None
    name = meta["name"]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": workers_service_name(name), "namespace": meta["namespace"],
                     "labels": _labels(name), "ownerReferences": [owner_reference(owner)]},
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_JOB_NAME: child_name(name, "train")},
            # Rank 0 must be resolvable while every pod is still starting (none is ever "ready").
            "publishNotReadyAddresses": True,
            "ports": [{"name": RDZV_PORT_NAME, "port": RDZV_PORT, "targetPort": RDZV_PORT, "protocol": "TCP"}],
        },
    }


def _labels(name: str) -> dict[str, str]:
    return {LABEL_FINETUNEJOB: name, "app.kubernetes.io/name": "senseops-trainer",
            "app.kubernetes.io/part-of": "senseops"}


def store_key(prefix: str, uri: str | None) -> str | None:
    """``s3://b/data/`` + ``s3://b/data/golden/a.jsonl`` -> ``golden/a.jsonl`` (the trainer reads keys of its store).

    A golden set outside the dataset's store is refused: the trainer's Job has credentials for one store.
    """
    if not uri:
        return None
    base = prefix if prefix.endswith("/") else prefix + "/"
    if not uri.startswith(base):
        raise ValueError(f"heldOut.goldenSetUri {uri!r} must lie under dataset.source {prefix!r}")
    return uri[len(base):]


def pod_failure_policy() -> dict[str, Any]:
    """See the module table."""
    return {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": TRAINER_CONTAINER, "operator": "In",
                                              "values": [EXIT_GATE_FAILED, EXIT_BAD_SETTINGS]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]}


def placement_fields(placement: Mapping[str, Any]) -> dict[str, Any]:
    """The pod-spec fields a FineTuneJob's ``placement`` sets (only those it names)."""
    out: dict[str, Any] = {}
    if placement.get("nodeSelector"):
        out["nodeSelector"] = dict(placement["nodeSelector"])
    if placement.get("tolerations"):
        out["tolerations"] = [dict(t) for t in placement["tolerations"]]
    if placement.get("priorityClassName"):
        out["priorityClassName"] = placement["priorityClassName"]
    return out


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {"apiVersion": c.API_VERSION, "kind": "FineTuneJob", "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def job_file(owner: Mapping[str, Any], base_model_uri: str) -> dict[str, Any]:
    """The job file of this FineTuneJob: its settings, the state mirror, the user's extra trainer settings."""
    meta, spec = owner["metadata"], owner["spec"]
    rendered = trainer_job_file(meta["name"], spec, base_model_uri)
    rendered["state_uri"] = state_uri(spec, meta["namespace"], meta["name"], meta["uid"])
    return with_trainer_settings(rendered, (spec.get("hyperparameters") or {}).get("trainerSettings") or {})


def render(owner: Mapping[str, Any], base_model_uri: str, service_account: str,
           store_secret: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ConfigMap with the job file and the Job that runs the trainer on it."""
    meta = owner["metadata"]
    spec = owner["spec"]
    name, namespace = meta["name"], meta["namespace"]
    labels = _labels(name)
    refs = [owner_reference(owner)]
    config_map: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": child_name(name, "job"), "namespace": namespace, "labels": labels,
                     "ownerReferences": refs},
        "data": {JOB_FILE_KEY: yaml.safe_dump(job_file(owner, base_model_uri), sort_keys=False)},
    }
    resources = spec.get("resources") or {}
    placement = spec.get("placement") or {}
    run_policy = spec.get("runPolicy") or {}
    gpus = int(resources.get("gpus", 1))
    limits = {"cpu": resources.get("cpu", "4"), "memory": resources.get("memory", "16Gi")}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    volumes: list[dict[str, Any]] = [
        {"name": "job", "configMap": {"name": config_map["metadata"]["name"]}},
        {"name": "work", "emptyDir": {}},
    ]
    mounts = [{"name": "job", "mountPath": JOB_FILE_DIR, "readOnly": True}, {"name": "work", "mountPath": WORK_DIR}]
    env = [{"name": "FINETUNEJOB_NAME", "value": name}, {"name": "FINETUNEJOB_NAMESPACE", "value": namespace}]
    env_from: list[dict[str, Any]] = []
    if store_secret:
        volumes.append({"name": "store-credentials", "secret": {"secretName": store_secret}})
        mounts.append({"name": "store-credentials", "mountPath": STORE_SECRET_DIR, "readOnly": True})
        env.append({"name": "SENSEOPS_STORAGE_SECRET_DIR", "value": STORE_SECRET_DIR})
        env_from = [{"secretRef": {"name": store_secret}}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "containers": [{
            "name": TRAINER_CONTAINER,
            "image": spec.get("trainerImage", c.DEFAULT_TRAINER_IMAGE),
            "args": ["run", "--config", f"{JOB_FILE_DIR}/{JOB_FILE_KEY}", "--workdir", f"{WORK_DIR}/{name}"],
            "env": env,
            "envFrom": env_from,
            "resources": {"requests": dict(limits), "limits": dict(limits)},
            "volumeMounts": mounts,
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }],
        "volumes": volumes,
    }
    pod_spec.update(placement_fields(placement))
    backoff_limit = int(run_policy.get("backoffLimit", c.DEFAULT_BACKOFF_LIMIT))
    nodes = int(resources.get("nodes", 1))
    job_spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "ttlSecondsAfterFinished": int(run_policy.get("ttlSecondsAfterFinished",
                                                      c.DEFAULT_TTL_AFTER_FINISHED_SECONDS)),
        "suspend": bool(run_policy.get("suspend", False)),
        "podFailurePolicy": pod_failure_policy(),
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if run_policy.get("activeDeadlineSeconds"):
        job_spec["activeDeadlineSeconds"] = int(run_policy["activeDeadlineSeconds"])
    if nodes > 1:
        _make_indexed(job_spec, pod_spec, name, nodes, backoff_limit)
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": child_name(name, "train"), "namespace": namespace, "labels": labels,
                     "ownerReferences": refs},
        "spec": job_spec,
    }
    return config_map, job


def _make_indexed(job_spec: dict[str, Any], pod_spec: dict[str, Any], name: str, nodes: int,
                  backoff_limit: int) -> None:
    """Turn the single-pod Job into the Indexed Job of a multi-node run (see the module docstring)."""
    del job_spec["backoffLimit"]
    job_spec.update({
        "completionMode": "Indexed",
        "completions": nodes,
        "parallelism": nodes,
        "backoffLimitPerIndex": backoff_limit,
        "maxFailedIndexes": 0,
    })
    pod_spec["subdomain"] = workers_service_name(name)
    container = pod_spec["containers"][0]
    # The Job controller adds this too; written here so the pod spec says where the node rank comes from.
    container["env"].append({"name": NODE_RANK_ENV, "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{ANNOTATION_COMPLETION_INDEX}']"}}})
    container["ports"] = [{"name": RDZV_PORT_NAME, "containerPort": RDZV_PORT, "protocol": "TCP"}]


def trainer_access(owner: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The training pod's ServiceAccount, allowed only to read its own FineTuneJob and patch its status."""
    meta = owner["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    account = child_name(name, "trainer")
    labels = {LABEL_FINETUNEJOB: name}
    refs = [owner_reference(owner)]
    common = {"namespace": namespace, "labels": labels, "ownerReferences": refs}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, **common}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": account, **common},
         "rules": [
             {"apiGroups": [c.GROUP], "resources": ["finetunejobs"], "resourceNames": [name], "verbs": ["get"]},
             {"apiGroups": [c.GROUP], "resources": ["finetunejobs/status"], "resourceNames": [name],
              "verbs": ["get", "patch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": account, **common},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]
