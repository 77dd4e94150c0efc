"""The Rollout handler's part of the quality gate: find a ready pod behind each Service, run the golden-set
probe when the gate says it is due, and export the results as operator metrics.

The probe goes to a ready endpoint of each Service (from its EndpointSlices), not to the ClusterIP: that is
how the pod network is reached from both a cluster pod and a test's host process, and it measures exactly the
pods of each side (candidate pods are never selected by the stable Service). Only pods whose version label
names the side's model count: while a Deployment rolls from one model to the next, its old pods are still
ready endpoints, and probing one would score the wrong model. Until the candidate has such a pod the probe
waits (no measurement), as the weight does.
"""

from __future__ import annotations

from datetime import datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter, Gauge

from senseops_operator.decide import quality_gate as qg
from senseops_operator.decide.rollout_workloads import VERSION_LABEL
from senseops_operator.models.rollout import RolloutSpec, RolloutStatus
from senseops_operator.providers import golden

GATE_ERROR_RATE = Gauge("senseops_operator_quality_gate_error_rate",
                        "Golden-set CER/WER of the last quality-gate probe, by rollout and side.",
                        ["namespace", "rollout", "side", "metric"])
GATE_PROBES = Counter("senseops_operator_quality_gate_probes_total",
                      "Quality-gate probes by verdict (Successful, Failed, Inconclusive).",
                      ["namespace", "rollout", "phase"])
GATE_CLIPS = Gauge("senseops_operator_quality_gate_clips", "Clips scored by the last quality-gate probe.",
                   ["namespace", "rollout"])


def endpoint_url(api: client.ApiClient, namespace: str, service: str, port: int, model: str) -> str | None:
    """`http://<ready pod address>:<target port>` of a ready pod behind the Service port `port` that runs `model`
    (its version label); None when there is none."""
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    try:
        svc = core.read_namespaced_service(service, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    ports = svc.spec.ports or []
    wanted = next((p for p in ports if p.port == port), ports[0] if ports else None)
    if wanted is None:
        return None
    pods = {p.metadata.name for p in core.list_namespaced_pod(
        namespace, label_selector=f"{VERSION_LABEL}={model}").items}
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}").items
    for s in slices:
        number = next((p.port for p in s.ports or [] if (p.name or None) == (wanted.name or None)), None)
        if number is None:
            continue
        for e in s.endpoints or []:
            ready = e.conditions is None or e.conditions.ready is not False
            if e.addresses and ready and e.target_ref is not None and e.target_ref.name in pods:
                address = e.addresses[0]
                return f"http://[{address}]:{number}" if ":" in address else f"http://{address}:{number}"
    return None


def probe_if_due(api: client.ApiClient, spec: RolloutSpec, status: RolloutStatus, namespace: str, rollout: str,
                 candidate_service: str, candidate_ready: bool, now: datetime) -> qg.ProbeResult | None:
    """Run the golden-set probe when it is due (blocking: called in the reconcile thread); export its numbers."""
    gate = spec.quality_gate
    if gate is None or not qg.is_due(gate, status, now, candidate_ready):
        return None
    stable_model = status.stable_model or spec.stable_model.name
    try:
        candidate_url = endpoint_url(api, namespace, candidate_service, spec.target.port, spec.candidate_model.name)
        if candidate_url is None:
            return None  # no pod runs the candidate model yet: wait, as the weight does (not a measurement)
        stable_url = endpoint_url(api, namespace, spec.target.service, spec.target.port, stable_model)
    except ApiException as exc:
        source = f"{gate.golden_set.uri.rstrip('/')}/{gate.golden_set.manifest}"
        result = qg.ProbeResult(source, error=f"cannot read the Services' endpoints: {exc.reason}")
    else:
        result = golden.probe(gate, candidate_url, stable_url)
    _export(namespace, rollout, gate.metric, result, qg.judge(gate, result, now).phase)
    return result


def _export(namespace: str, rollout: str, metric: str, result: qg.ProbeResult, phase: str) -> None:
    GATE_PROBES.labels(namespace, rollout, phase).inc()
    GATE_CLIPS.labels(namespace, rollout).set(result.clips)
    for side, value in (("candidate", result.candidate), ("stable", result.stable)):
        if value is not None:
            GATE_ERROR_RATE.labels(namespace, rollout, side, metric).set(value)
