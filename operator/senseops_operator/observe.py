"""Observation: read what the decisions need from the cluster and the object stores (blocking I/O,
called through `asyncio.to_thread` by the handlers)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from senseops_common.storage import verify_object
from senseops_operator import constants as c
from senseops_operator.decide import asrmodel as ma
from senseops_operator.decide import finetunejob as ftj
from senseops_operator.decide import image_build as ib
from senseops_operator.decide import training_job as tj
from senseops_operator.decide.asrmodel import ArtifactCheck


@dataclass(frozen=True)
class ArtifactLimits:
    """The operator's bounds on artifact checks (config.OperatorConfig)."""

    file_root: str | None = None  # file:// artifacts only below this folder; None: refused
    max_objects: int = 10_000
    max_bytes: int = 64 * 2**30


def check_artifact(spec: dict[str, Any], limits: ArtifactLimits = ArtifactLimits(),
                   registry: Any = None) -> ArtifactCheck:
    """Ask the store (or the registry, for ``oci://``) whether the artifact exists with the expected digest."""
    artifact = spec["artifact"]
    uri: str = artifact["uri"]
    if uri.startswith("oci://"):
        if registry is None:
            return ArtifactCheck(False, "UnsupportedScheme", f"{uri}: this operator has no registry client")
        return ma.oci_artifact_check(uri, artifact["sha256"], registry_answer(registry, uri))
    if uri.startswith("file://"):
        path, failure = ma.file_artifact_path(uri, limits.file_root)
        if failure is not None:
            return failure
        assert path is not None and limits.file_root is not None
        failure = file_escapes(uri, path, limits.file_root)
        if failure is not None:
            return failure
    too_big = over_limits(uri, limits)
    if too_big is not None:
        return too_big
    result = verify_object(uri, artifact["sha256"], artifact.get("sizeBytes"))
    return ArtifactCheck(result.ok, result.reason, result.message, result.size, result.sha256)


def check_image(spec: dict[str, Any], registry: Any) -> ma.ImageCheck | None:
    """Verify ``spec.image.reference`` against its registry (None without spec.image)."""
    image = spec.get("image")
    if not image:
        return None
    return ma.image_check(image["reference"], registry_answer(registry, image["reference"]))


def registry_answer(registry: Any, reference: str) -> ma.RegistryAnswer:
    """The registry's digest for ``reference``, or the failure as a condition reason."""
    from senseops_operator import registry as reg

    try:
        return ma.RegistryAnswer(registry.manifest_digest(reg.parse_image_ref(reference)))
    except ValueError as exc:
        return ma.RegistryAnswer(None, "InvalidURI", str(exc))
    except reg.RegistryUnavailable as exc:
        return ma.RegistryAnswer(None, "RegistryUnavailable", str(exc))
    except reg.ManifestNotFound as exc:
        return ma.RegistryAnswer(None, "ManifestNotFound", str(exc))
    except reg.RegistryAuthError as exc:
        return ma.RegistryAnswer(None, "AccessDenied", str(exc))
    except reg.RegistryError as exc:
        return ma.RegistryAnswer(None, "RegistryError", str(exc))


def file_escapes(uri: str, path: str, root: str) -> ArtifactCheck | None:
    """A file:// artifact that leaves the root through a symlink (itself, a parent, or any entry below it)."""
    real_root = os.path.realpath(root)
    outside = ArtifactCheck(False, "OutsideArtifactRoot", f"{uri}: resolves (through a symlink) outside the "
                            f"operator's artifact root {root}; copy the model files under the root")
    if not ma.inside_root(os.path.realpath(path), real_root):
        return outside
    if os.path.isdir(path):
        for folder, dirs, files in os.walk(path):
            for entry in (*dirs, *files):
                full = os.path.join(folder, entry)
                if os.path.islink(full) and not ma.inside_root(os.path.realpath(full), real_root):
                    return outside
    return None


def over_limits(uri: str, limits: ArtifactLimits) -> ArtifactCheck | None:
    """Refuse artifacts with more objects or bytes than the operator will hash (one listing, stops early)."""
    from senseops_common.storage import NotFound, StorageError
    from senseops_common.storage.factory import resolve

    try:
        store, key = resolve(uri)
        if key and not key.endswith("/"):
            try:
                size = store.stat(key).size
                return _too_big(uri, 1, size, limits) if size > limits.max_bytes else None
            except NotFound:
                key += "/"
        total = 0
        for count, info in enumerate(store.list(key), start=1):
            total += info.size
            if count > limits.max_objects or total > limits.max_bytes:
                return _too_big(uri, count, total, limits)
    except StorageError:
        return None  # verify_object reports store problems with the right reason
    return None


def _too_big(uri: str, count: int, total: int, limits: ArtifactLimits) -> ArtifactCheck:
    return ArtifactCheck(False, "TooLarge", f"{uri}: more than {limits.max_objects} objects or {limits.max_bytes} "
                         f"bytes (counted {count} objects, {total} bytes so far); the operator does not hash "
                         "artifacts this large — raise SENSEOPS_ARTIFACT_MAX_OBJECTS / _MAX_BYTES if it is right")


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


# --- FineTuneJob --------------------------------------------------------------------------------------
def model_object(api: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = api.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, "asrmodels", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


def segments_in_index(source: str, anchors: list[str], window: dict[str, Any] | None) -> list[ftj.Segment]:
    """Every transcript-index line of the anchors in the window (the `asr/` JSON lines; no audio is read)."""
    from datetime import datetime

    from senseops_common.layout import iter_segment_records
    from senseops_common.storage import open_store

    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    store = open_store(source if source.endswith("/") else source + "/")
    since, until = when((window or {}).get("start")), when((window or {}).get("end"))
    out = []
    for anchor in anchors:
        for record in iter_segment_records(store, anchor, since, until):
            out.append(ftj.Segment(record.anchor_id, record.segment_id, (record.end_ms - record.start_ms) / 1000.0,
                                   record.confidence))
    return out


def training_job_state(batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str,
                       job_name: str) -> ftj.TrainingJobState:
    """The training Job's state and the exit codes of its trainer containers (oldest first)."""
    try:
        job = batch.read_namespaced_job(job_name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return ftj.TrainingJobState(exists=False)
        raise
    failed_reason, failed_message, succeeded = None, "", False
    for cond in job.status.conditions or []:
        if cond.status != "True":
            continue
        if cond.type == "Failed":
            failed_reason, failed_message = cond.reason or "Failed", cond.message or ""
        elif cond.type == "Complete":
            succeeded = True
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    ended: list[tuple[str, int]] = []
    for pod in pods:
        for cs in pod.status.container_statuses or []:
            term = cs.state.terminated if cs.name == tj.TRAINER_CONTAINER and cs.state else None
            if term is not None:
                ended.append((str(term.finished_at or ""), int(term.exit_code)))
    return ftj.TrainingJobState(
        exists=True, active=int(job.status.active or 0), succeeded=succeeded, failed_reason=failed_reason,
        failed_message=failed_message, suspended=bool(job.spec.suspend), pods=len(pods),
        exit_codes=tuple(code for _, code in sorted(ended)))


def evaluation_report(models_uri: str, job: str) -> ftj.EvaluationReport | None:
    """The trainer's report (`reports/{job}/report.json` in the output store), or None when absent."""
    import json

    from senseops_common.layout import report_key
    from senseops_common.storage import NotFound, open_store

    store = open_store(models_uri)
    key = report_key(job, "report.json")
    try:
        report = json.loads(store.get_bytes(key))
    except NotFound:
        return None
    gate = report.get("gate") or {}
    used = gate.get("set_used")
    chosen = (report.get("sets") or {}).get(used) or {}

    def rate(which: str) -> float | None:
        value = (chosen.get(which) or {}).get("rate")
        return float(value) if isinstance(value, int | float) else None

    rtf = (report.get("rtf") or {}).get("new")
    # The trainer's error rate counts CJK characters and Latin words together (its CER/WER); it goes in as CER.
    return ftj.EvaluationReport(
        uri=store.uri_for(key), gate_passed=bool(gate.get("passed")), gate_reason=str(gate.get("reason", "")),
        gate_set=used, base_cer=rate("base"), new_cer=rate("new"),
        rtf=float(rtf) if isinstance(rtf, int | float) else None,
        skipped_batches=(report.get("data") or {}).get("skipped_training_batches"))


def packaged_model(models_uri: str, name: str, version: str) -> ftj.PackagedModel | None:
    """The packaged model directory `models/{name}/{version}/`: URI and digest from its MANIFEST.sha256."""
    import hashlib

    from senseops_common.layout import model_prefix
    from senseops_common.storage import MANIFEST_NAME, NotFound, open_store

    store = open_store(models_uri)
    prefix = model_prefix(name, version)
    try:
        manifest = store.get_bytes(prefix + MANIFEST_NAME)
    except NotFound:
        return None
    return ftj.PackagedModel(uri=store.uri_for(prefix), sha256=hashlib.sha256(manifest).hexdigest())


# --- image build ----------------------------------------------------------------------------------------
def image_build_state(batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str,
                      job_name: str) -> ib.ImageBuildState:
    """The image build Job and the termination message of its last ended build container."""
    try:
        job = batch.read_namespaced_job(job_name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return ib.ImageBuildState(exists=False)
        raise
    failed_reason, succeeded = None, False
    for cond in job.status.conditions or []:
        if cond.status == "True" and cond.type == "Failed":
            failed_reason = cond.reason or "Failed"
        elif cond.status == "True" and cond.type == "Complete":
            succeeded = True
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    ended: list[tuple[str, str]] = []
    for pod in pods:
        for cs in pod.status.container_statuses or []:
            term = cs.state.terminated if cs.name == ib.BUILD_CONTAINER and cs.state else None
            if term is not None:
                ended.append((str(term.finished_at or ""), term.message or ""))
    message = sorted(ended)[-1][1] if ended else ""
    return ib.ImageBuildState(exists=True, active=int(job.status.active or 0), succeeded=succeeded,
                              failed_reason=failed_reason, message=message, pods=len(pods))


def pushed_digest(registry: Any, tag: str) -> ib.RegistryDigest:
    """Ask the registry (with the operator's own credentials) which digest ``tag`` names now."""
    from senseops_operator import registry as reg

    try:
        return ib.RegistryDigest(registry.manifest_digest(reg.parse_image_ref(tag)))
    except reg.RegistryUnavailable as exc:
        return ib.RegistryDigest(None, str(exc), transient=True)
    except (reg.RegistryError, ValueError) as exc:
        return ib.RegistryDigest(None, str(exc))
