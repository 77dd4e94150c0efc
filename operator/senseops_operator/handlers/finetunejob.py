"""FineTuneJob handlers: observe (base model, transcript index, training Job, report, package), decide, act
(create the trainer's access, job file and Job; publish the ASRModel), record."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from senseops_common.storage import StorageError
from senseops_operator import constants as c
from senseops_operator import observe
from senseops_operator.decide import finetunejob as decide
from senseops_operator.decide import image_build, training_job
from senseops_operator.handlers.record import measured, record

PLURAL = "finetunejobs"


def _observe(spec: dict[str, Any], name: str, namespace: str, generation: int,
             memo: kopf.Memo, status: dict[str, Any] | None = None) -> decide.FineTuneJobObservation:
    custom: client.CustomObjectsApi = memo.custom_api
    api = custom.api_client
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    base_name, output_name = spec["baseModel"]["name"], spec["output"]["modelName"]
    base = observe.model_object(custom, namespace, base_name)
    output = observe.model_object(custom, namespace, output_name)
    phases = {base_name: None if base is None else (base.get("status") or {}).get("phase") or "Pending",
              output_name: None if output is None else (output.get("status") or {}).get("phase") or "Pending"}
    base_uri = base["spec"]["artifact"]["uri"] if base is not None and phases[base_name] == "Ready" else None
    job = observe.training_job_state(batch, core, namespace, training_job.child_name(name, "train"))
    readiness = None
    if not job.exists and base_uri is not None:
        dataset = spec["dataset"]
        segments = observe.segments_in_index(dataset["source"], list(dataset["anchorIds"]), dataset.get("window"))
        readiness = decide.readiness(segments, dataset["anchorIds"], dataset.get("filters") or {},
                                     float(dataset.get("minHours", 3.0)))
    report = package = None
    if job.succeeded or job.failed_reason is not None:
        report = observe.evaluation_report(spec["output"]["storeUri"], name)
        package = observe.packaged_model(spec["output"]["storeUri"], output_name, spec["output"].get("version") or name)
    owner = None if output is None else (output["metadata"].get("labels") or {}).get(training_job.LABEL_FINETUNEJOB)
    build, pushed = image_build.ImageBuildState(exists=False), None
    if spec.get("image") and job.succeeded and not ((status or {}).get("image") or {}).get("digest"):
        build = observe.image_build_state(batch, core, namespace, image_build.build_job_name(name))
        if build.succeeded:
            pushed = observe.pushed_digest(memo.registry, image_build.image_tag(name, spec))
    return decide.FineTuneJobObservation(
        generation=generation, name=name, model_phases=phases, base_model_uri=base_uri, readiness=readiness,
        job=job, report=report, package=package, output_model_owner=owner, image_build=build,
        registry_digest=pushed)


def _create(fn: Any, *args: Any) -> None:
    """Create a child; an existing one (a retry, a restarted operator) is fine: names are deterministic."""
    try:
        fn(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise


def _act(decision: decide.FineTuneJobDecision, body: dict[str, Any], memo: kopf.Memo) -> None:
    custom: client.CustomObjectsApi = memo.custom_api
    api = custom.api_client
    core, batch, rbac = client.CoreV1Api(api), client.BatchV1Api(api), client.RbacAuthorizationV1Api(api)
    namespace = body["metadata"]["namespace"]
    for action in decision.actions:
        if isinstance(action, decide.CreateTrainingJob):
            account, role, binding = training_job.trainer_access(body)
            _create(core.create_namespaced_service_account, namespace, account)
            _create(rbac.create_namespaced_role, namespace, role)
            _create(rbac.create_namespaced_role_binding, namespace, binding)
            config_map, job = training_job.render(body, action.base_model_uri, account["metadata"]["name"],
                                                  body["spec"].get("storeSecret"))
            _create(core.create_namespaced_config_map, namespace, config_map)
            workers = training_job.workers_service(body)  # multi-node runs: DNS names for the rendezvous
            if workers is not None:
                _create(core.create_namespaced_service, namespace, workers)
            _create(batch.create_namespaced_job, namespace, job)
        elif isinstance(action, decide.CreateImageBuildJob):
            build = image_build.render_build_job(body, action.artifact_uri, action.sha256, memo.config.image_base)
            _create(batch.create_namespaced_job, namespace, build)
        elif isinstance(action, decide.CreateModel):
            model = {"apiVersion": c.API_VERSION, "kind": "ASRModel",
                     "metadata": {"name": action.name, "namespace": namespace, "labels": dict(action.labels)},
                     "spec": dict(action.spec)}
            _create(custom.create_namespaced_custom_object, c.GROUP, c.VERSION, namespace, "asrmodels", model)


@kopf.on.resume(c.GROUP, c.VERSION, PLURAL)
@kopf.on.create(c.GROUP, c.VERSION, PLURAL)
@kopf.on.update(c.GROUP, c.VERSION, PLURAL, field="spec")
async def reconcile(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, name: str, namespace: str, body: kopf.Body,
    patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any,
) -> None:
    with measured("FineTuneJob"):
        generation = int(meta.get("generation") or 0)
        try:
            observation = await asyncio.to_thread(_observe, dict(spec), name, namespace, generation,
                                                  memo, dict(status))
        except StorageError as exc:  # the store is down or refuses us: say so, look again later
            patch.status["message"] = f"cannot read the object store: {exc}"
            raise kopf.TemporaryError(f"object store: {exc}", delay=decide.RECHECK_SECONDS) from exc
        decision = decide.decide(dict(spec), dict(status), observation, datetime.now(UTC))
        await asyncio.to_thread(_act, decision, dict(body), memo)
        record(decision, body, patch)


# kopf keys progress by handler id: a timer follows the Job, the data and the base model, none of which
# change this object. It honours the decided pace through the stage (fast while running, backing off
# while waiting for data) by skipping runs until the last decision's requeue time.
# It also runs at once whenever the trainer patches status.progress.stage (fetch ... evaluate, export,
# package), so every coarse stage is shown, short ones too: evaluating the tiny model takes a few seconds,
# less than the timer's period, and was skipped.
@kopf.on.update(c.GROUP, c.VERSION, PLURAL, field="status.progress.stage")
@kopf.timer(c.GROUP, c.VERSION, PLURAL, interval=decide.RUNNING_RECHECK_SECONDS,
            initial_delay=decide.RUNNING_RECHECK_SECONDS)
async def follow(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, name: str, namespace: str, body: kopf.Body,
    patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any,
) -> None:
    if (status.get("stage") or "") in decide.TERMINAL:
        return
    checked = (status.get("data") or {}).get("checkedAt")
    if status.get("stage") == "WaitingForData" and checked:
        waited = (datetime.now(UTC) - datetime.fromisoformat(checked.replace("Z", "+00:00"))).total_seconds()
        if waited < decide.data_recheck_seconds(int((status.get("data") or {}).get("checks", 1))):
            return
    await reconcile(spec=spec, status=status, meta=meta, name=name, namespace=namespace, body=body, patch=patch,
                    memo=memo, logger=logger)
