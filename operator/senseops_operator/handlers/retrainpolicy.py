"""RetrainPolicy handler: observe (the policy's FineTuneJobs, the transcript index since the watermark), decide,
act (create the FineTuneJob it owns, write the audit record, delete old finished jobs), record.

One kopf timer per policy runs the check; kopf never runs one object's timer twice at once, so two checks
never race to create the same trigger. It ticks every MIN_RETRAIN_CHECK_SECONDS and skips the work until
`spec.checkIntervalSeconds` passed since the last check (or the spec changed).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from senseops_common.storage import StorageError, open_store
from senseops_operator import constants as c
from senseops_operator import observe
from senseops_operator.decide import retrainpolicy as decide
from senseops_operator.handlers.record import measured, record
from senseops_operator.metrics import RETRAIN_TRIGGERS
from senseops_operator.models import RetrainPolicySpec, RetrainPolicyStatus

PLURAL = "retrainpolicies"
FTJ_PLURAL = "finetunejobs"
ROLLOUT_PLURAL = "rollouts"


def _observed_job(obj: dict[str, Any], uid: str) -> decide.ObservedJob:
    meta = obj["metadata"]
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    status = obj.get("status") or {}
    number = labels.get(decide.LABEL_TRIGGER, "")
    try:
        hours = {str(k): float(v) for k, v in json.loads(notes.get(decide.ANNOTATION_HOURS) or "{}").items()}
    except (ValueError, AttributeError):
        hours = {}
    return decide.ObservedJob(
        name=meta["name"], owned=any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []),
        number=int(number) if number.isdigit() else None, stage=status.get("stage"),
        produced_model=(status.get("producedModel") or {}).get("name"),
        trigger_time=notes.get(decide.ANNOTATION_TRIGGER_TIME), cutoff=notes.get(decide.ANNOTATION_CUTOFF),
        new_hours=hours, base_model=((obj.get("spec") or {}).get("baseModel") or {}).get("name"))


def _observed_rollout(obj: dict[str, Any], uid: str) -> decide.ObservedRollout:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    number = (meta.get("labels") or {}).get(decide.LABEL_TRIGGER, "")
    return decide.ObservedRollout(
        name=meta["name"], owned=any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []),
        number=int(number) if number.isdigit() else None, phase=status.get("phase"),
        stable_model=status.get("stableModel"), spec_stable=(spec.get("stableModel") or {}).get("name"),
        candidate=(spec.get("candidateModel") or {}).get("name"))


def _observe(spec: RetrainPolicySpec, status: RetrainPolicyStatus, meta: dict[str, Any], namespace: str,
             memo: kopf.Memo) -> decide.RetrainObservation:
    custom: client.CustomObjectsApi = memo.custom_api
    name, uid = meta["name"], meta["uid"]
    listed = custom.list_namespaced_custom_object(c.GROUP, c.VERSION, namespace, FTJ_PLURAL,
                                                  label_selector=f"{decide.LABEL_POLICY}={name}")
    jobs = tuple(_observed_job(obj, uid) for obj in listed.get("items") or [])
    foreign = frozenset(j.name for j in jobs if not j.owned)
    next_name = decide.job_name(name, decide.next_number(status, jobs))
    if next_name not in {j.name for j in jobs}:  # a FineTuneJob of that name without our label
        try:
            custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, FTJ_PLURAL, next_name)
            foreign |= {next_name}
        except ApiException as exc:
            if exc.status != 404:
                raise
    since = decide.watermark(spec, status, jobs)
    segments = observe.segments_in_index(spec.source, list(spec.anchors), {"start": since} if since else None)
    rollouts: tuple[decide.ObservedRollout, ...] = ()
    if spec.release is not None or status.last_release is not None:
        listed = custom.list_namespaced_custom_object(c.GROUP, c.VERSION, namespace, ROLLOUT_PLURAL,
                                                      label_selector=f"{decide.LABEL_POLICY}={name}")
        rollouts = tuple(_observed_rollout(obj, uid) for obj in listed.get("items") or [])
    return decide.RetrainObservation(
        generation=int(meta.get("generation") or 0), name=name, namespace=namespace, uid=uid,
        segments=tuple(segments), jobs=jobs, foreign_names=foreign, rollouts=rollouts)


def _act(decision: decide.RetrainDecision, spec: RetrainPolicySpec, body: dict[str, Any], memo: kopf.Memo,
         logger: logging.Logger) -> None:
    custom: client.CustomObjectsApi = memo.custom_api
    meta = body["metadata"]
    namespace = meta["namespace"]
    owner = {"apiVersion": c.API_VERSION, "kind": "RetrainPolicy", "name": meta["name"], "uid": meta["uid"],
             "controller": True, "blockOwnerDeletion": True}
    for action in decision.actions:
        if isinstance(action, decide.CreateFineTuneJob):
            job = {"apiVersion": c.API_VERSION, "kind": "FineTuneJob",
                   "metadata": {"name": action.name, "namespace": namespace, "labels": dict(action.labels),
                                "annotations": dict(action.annotations), "ownerReferences": [owner]},
                   "spec": dict(action.spec)}
            try:
                custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, FTJ_PLURAL, job)
            except ApiException as exc:
                if exc.status == 409:  # created by an earlier try: the next check adopts it
                    raise kopf.TemporaryError(f"FineTuneJob {action.name} already exists; adopting it",
                                              delay=decide.RETRY_SECONDS) from exc
                raise
            RETRAIN_TRIGGERS.labels(namespace, meta["name"]).inc()
        elif isinstance(action, decide.CreateRollout):
            rollout = {"apiVersion": c.API_VERSION, "kind": "Rollout",
                       "metadata": {"name": action.name, "namespace": namespace, "labels": dict(action.labels),
                                    "ownerReferences": [owner]},
                       "spec": dict(action.spec)}
            try:
                custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, ROLLOUT_PLURAL, rollout)
            except ApiException as exc:
                if exc.status != 409:  # created by an earlier try: observed (and not repeated) next time
                    raise
        elif isinstance(action, decide.WriteAudit):
            store = open_store(spec.source if spec.source.endswith("/") else spec.source + "/")
            store.put(action.key, json.dumps(action.record, indent=1, sort_keys=True).encode() + b"\n")
        elif isinstance(action, decide.DeleteFineTuneJob):
            try:
                custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, namespace, FTJ_PLURAL, action.name,
                                                       propagation_policy="Background")
            except ApiException as exc:
                # History is housekeeping: a refused delete must not hold back the trigger's status write.
                if exc.status != 404:
                    logger.warning("could not delete FineTuneJob %s beyond the history limit: %s %s", action.name,
                                   exc.status, exc.reason)


@kopf.timer(c.GROUP, c.VERSION, PLURAL, interval=c.MIN_RETRAIN_CHECK_SECONDS)
async def check(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, namespace: str, body: kopf.Body, patch: kopf.Patch,
    memo: kopf.Memo, logger: logging.Logger, **_: Any,
) -> None:
    policy = RetrainPolicySpec.model_validate(dict(spec))
    current = RetrainPolicyStatus.model_validate(dict(status))
    generation = int(meta.get("generation") or 0)
    if not decide.due(policy, current, generation, datetime.now(UTC)):
        return
    with measured("RetrainPolicy"):
        try:
            observation = await asyncio.to_thread(_observe, policy, current, dict(meta), namespace, memo)
            decision = decide.decide(policy, current, observation, datetime.now(UTC))
            await asyncio.to_thread(_act, decision, policy, dict(body), memo, logger)
        except StorageError as exc:  # the store is down or refuses us: say so, look again later
            patch.status["message"] = f"cannot read or write the object store: {exc}"
            raise kopf.TemporaryError(f"object store: {exc}", delay=policy.check_interval_seconds) from exc
        record(decision, body, patch)
