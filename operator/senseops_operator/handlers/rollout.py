"""Rollout handler: one kopf daemon per Rollout runs observe → decide → act → record until it is deleted.

A daemon (not on.update) because a rollout moves with time and the outside world (pods getting ready, the
router confirming, measurements falling due), not only with changes to its own object; it sleeps for the
decision's `requeue_after`. Each pass re-reads the object, so CLI verbs written to status are seen at once.
All writes to other objects are server-side applies under the field manager `senseops-operator`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter, Gauge

from senseops_operator import constants as c
from senseops_operator.decide import rollout_steps as steps
from senseops_operator.decide import rollout_workloads as workloads
from senseops_operator.decide.analysis import MetricResult
from senseops_operator.decide.common import Event
from senseops_operator.handlers import quality_gate as gate_probe
from senseops_operator.handlers.record import measured
from senseops_operator.models.asrmodel import ASRModelSpec, ASRModelStatus
from senseops_operator.models.rollout import RolloutSpec, RolloutStatus
from senseops_operator.providers import QueryContext, provider_for
from senseops_operator.routers import RouterError, TrafficRouter
from senseops_operator.routers.apply import server_side_apply
from senseops_operator.routers.gateway_api import GatewayAPIRouter
from senseops_operator.routers.nginx import NginxRouter

PLURAL = "rollouts"
IDLE_SECONDS = 30.0  # when the decision names no time to look again
PHASES = ("Pending", "Progressing", "Paused", "Healthy", "Degraded", "Aborted")

# Rollout metrics (served on the operator's /metrics with the reconcile metrics).
ROLLOUT_WEIGHT = Gauge("senseops_rollout_weight_percent", "Candidate weight the router confirms.",
                       ["namespace", "rollout"])
ROLLOUT_PHASE = Gauge("senseops_rollout_phase", "1 for the Rollout's current phase.", ["namespace", "rollout", "phase"])
ROLLOUT_STEP = Gauge("senseops_rollout_step", "Index of the current step (steps count = promotion).",
                     ["namespace", "rollout"])
ROLLOUT_MEASUREMENTS = Counter("senseops_rollout_measurements_total", "Analysis verdicts by metric and phase.",
                               ["namespace", "rollout", "metric", "phase"])


@dataclass(frozen=True)
class Pass:
    """What one reconcile pass produced for the async side: Events to post and when to run again."""

    body: dict[str, Any] | None
    events: tuple[Event, ...]
    delay: float


def _get(api: client.ApiClient, fn: Any, *args: Any) -> dict[str, Any] | None:
    """Read one object as the API server's JSON (None when it does not exist)."""
    try:
        obj = fn(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    result: dict[str, Any] = obj if isinstance(obj, dict) else api.sanitize_for_serialization(obj)
    return result


def _router(api: client.ApiClient, spec: RolloutSpec, obj: dict[str, Any], owner: dict[str, Any]) -> TrafficRouter:
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    canary = workloads.canary_name(name)
    if spec.traffic_routing.gateway_api is not None:
        return GatewayAPIRouter(api, ns, spec.traffic_routing.gateway_api.http_route, spec.target.service, canary)
    assert spec.traffic_routing.nginx is not None  # the CRD requires exactly one router
    return NginxRouter(api, ns, spec.traffic_routing.nginx.stable_ingress, name, owner, spec.target.service, canary)


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj["metadata"]
    return {"apiVersion": c.API_VERSION, "kind": "Rollout", "name": m["name"], "uid": m["uid"], "controller": True,
            "blockOwnerDeletion": True}


def reconcile_once(api: client.ApiClient, namespace: str, name: str, logger: logging.Logger) -> Pass:
    """One observe → decide → act → record pass (blocking; run in a thread)."""
    custom, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
    obj = _get(api, custom.get_namespaced_custom_object, c.GROUP, c.VERSION, namespace, PLURAL, name)
    if obj is None:
        return Pass(None, (), IDLE_SECONDS)
    spec = RolloutSpec.model_validate(obj["spec"])
    status = RolloutStatus.model_validate(obj.get("status") or {})
    owner = _owner(obj)
    now = datetime.now(UTC)

    # ---- observe
    target = _get(api, apps.read_namespaced_deployment, spec.target.deployment, namespace)
    stable_service = _get(api, core.read_namespaced_service, spec.target.service, namespace)
    canary = _get(api, apps.read_namespaced_deployment, workloads.canary_name(name), namespace)
    stable_name = status.stable_model or spec.stable_model.name
    models = {n: _get(api, custom.get_namespaced_custom_object, c.GROUP, c.VERSION, namespace, "asrmodels", n)
              for n in {stable_name, spec.candidate_model.name}}
    phases = {n: (None if m is None else (m.get("status") or {}).get("phase") or "Pending") for n, m in models.items()}
    missing = None
    if target is None or stable_service is None:
        what = f"Deployment {spec.target.deployment}" if target is None else f"Service {spec.target.service}"
        missing = f"target {what} not found in {namespace}; create it or fix spec.target"
    router_weight: int | None = None
    results: tuple[MetricResult, ...] = ()
    quality = None
    if missing is None:
        try:
            router_weight = _router(api, spec, obj, owner).confirmed_weight()
        except RouterError as exc:
            logger.warning("router: %s", exc)
        context = QueryContext(candidate=spec.candidate_model.name, stable=stable_name, namespace=namespace)
        results = tuple(provider_for(m).measure(m, context) for m in steps.metrics_due(spec, status, now))
        quality = gate_probe.probe_if_due(
            api, spec, status, namespace, name, workloads.canary_name(name),
            workloads.ready_replicas_of(canary, spec.candidate_model.name) > 0, now)
    annotation = ((obj["metadata"].get("annotations") or {}).get(steps.VERB_ANNOTATION))
    observation = steps.RolloutObservation(
        generation=int(obj["metadata"].get("generation") or 0), model_phases=phases,
        stable_replicas=int(((target or {}).get("spec") or {}).get("replicas", 1)),
        candidate_ready_replicas=workloads.ready_replicas_of(canary, spec.candidate_model.name),
        router_weight=router_weight, stable_serving_model=workloads.serving_model(target), results=results,
        annotation_verb=annotation, target_missing=missing,
        stable_template_model=workloads.template_model(target), quality=quality,
    )

    # ---- decide
    decision = steps.decide(spec, status, observation, now)

    # ---- act (in the decided order: e.g. weight 0 before any scale-down)
    events = list(decision.events)
    for action in decision.actions:
        try:
            assert target is not None and stable_service is not None  # decide acts only when both exist
            _perform(api, action, obj, owner, target, stable_service, models)
        except (RouterError, ApiException) as exc:
            text = exc.reason if isinstance(exc, ApiException) else str(exc)
            events.append(Event("Warning", "ActionFailed", f"{type(action).__name__}: {text}"))
            logger.warning("%s failed: %s", action, text)
            break  # later actions may depend on this one; the next pass retries

    # ---- record (once)
    _write_status(custom, namespace, name, decision.status_patch)
    _export(namespace, name, decision.status, len(results))
    return Pass(obj, tuple(events), decision.requeue_after or IDLE_SECONDS)


def _model(models: dict[str, dict[str, Any] | None], name: str) -> tuple[ASRModelSpec, ASRModelStatus | None]:
    obj = models.get(name)
    if obj is None:
        raise RouterError(f"ASRModel {name} not found")
    return ASRModelSpec.model_validate(obj["spec"]), ASRModelStatus.model_validate(obj.get("status") or {})


def _perform(api: client.ApiClient, action: steps.Action, obj: dict[str, Any], owner: dict[str, Any],
             target: dict[str, Any], stable_service: dict[str, Any], models: dict[str, dict[str, Any] | None],
             ) -> None:
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    spec = RolloutSpec.model_validate(obj["spec"])
    match action:
        case steps.ScaleCandidate(model=model, replicas=replicas):
            model_spec, model_status = _model(models, model)
            selector = (stable_service.get("spec") or {}).get("selector") or {}
            deployment = workloads.candidate_deployment(target, name, owner, model, model_spec, model_status,
                                                        replicas, [selector])
            server_side_apply(api, f"/apis/apps/v1/namespaces/{ns}/deployments/{workloads.canary_name(name)}",
                              deployment)
            service = workloads.candidate_service(stable_service, name, owner)
            server_side_apply(api, f"/api/v1/namespaces/{ns}/services/{workloads.canary_name(name)}", service)
        case steps.SetWeight(weight=weight):
            _router(api, spec, obj, owner).set_weight(weight)
        case steps.MoveStable(model=model):
            model_spec, model_status = _model(models, model)
            body = workloads.stable_model_patch(target, model, model_spec, model_status)
            server_side_apply(api, f"/apis/apps/v1/namespaces/{ns}/deployments/{spec.target.deployment}", body)
        case steps.ClearVerbAnnotation():
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                c.GROUP, c.VERSION, ns, PLURAL, name, {"metadata": {"annotations": {steps.VERB_ANNOTATION: None}}})


def _export(namespace: str, name: str, status: RolloutStatus, measured_now: int) -> None:
    ROLLOUT_WEIGHT.labels(namespace, name).set(status.actual_weight or 0)
    ROLLOUT_STEP.labels(namespace, name).set(status.current_step_index or 0)
    for phase in PHASES:
        ROLLOUT_PHASE.labels(namespace, name, phase).set(1 if status.phase == phase else 0)
    for m in status.measurements[len(status.measurements) - measured_now:] if measured_now else []:
        ROLLOUT_MEASUREMENTS.labels(namespace, name, m.metric, m.phase).inc()


def _write_status(custom: client.CustomObjectsApi, namespace: str, name: str, status: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object_status(c.GROUP, c.VERSION, namespace, PLURAL, name, {"status": status})


@kopf.daemon(c.GROUP, c.VERSION, PLURAL, cancellation_timeout=10.0)
async def run(name: str, namespace: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: logging.Logger,
              **_: Any) -> None:
    """Reconcile one Rollout for as long as it exists."""
    api: client.ApiClient = memo.custom_api.api_client
    while not stopped:
        delay = steps.POLL_SECONDS
        try:
            with measured("Rollout"):
                result = await asyncio.to_thread(reconcile_once, api, namespace, name, logger)
            if result.body is not None:
                for event in result.events:
                    kopf.event(result.body, type=event.type, reason=event.reason, message=event.message)
            delay = result.delay
        except Exception as exc:  # one bad pass must not end the daemon; kopf would not restart it
            logger.exception("rollout pass failed: %s", exc)
        await stopped.wait(delay)
