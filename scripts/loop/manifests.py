"""The loop's Kubernetes objects (pure builders): the runtime Deployment that records, the route, the
FineTuneJob and the Rollouts. Knobs the demo scales down are named constants here."""

from __future__ import annotations

import json
from typing import Any

from tests.gateway.__main__ import DEFAULT_CLASS
from tests.gateway.helpers import gateway, http_route
from tests.procnode.workloads import runtime_deployment, tiny_cpu_training

VERSION_LABEL = "app.kubernetes.io/version"
NAMESPACE = "senseops-loop"
BUCKET = "senseops-loop"
STORE_SECRET = "store"
DEPLOYMENT = "asr"
GATEWAY = "web"
ROUTE = "asr"
BASE_MODEL = "base"
API = "senseops.dev/v1alpha1"
# The seed's trigger is ≥ 3 h of new good audio per streamer; the demo has minutes. The RetrainPolicy's
# minNewHours is this share of the reviewed audio the streamers recorded (the threshold scaled down), counted
# over all anchors together (thresholdScope Total).
MIN_HOURS_SHARE = 0.8
POLICY = "retrain"  # its FineTuneJob and its Rollout are `retrain-<n>`
TUNED_PREFIX = "tuned"  # the models it produces are `tuned-<n>`
PUSH_SECRET = "push"  # dockerconfigjson for the stack's registry (the image build Job pushes with it)
IMAGE_REPOSITORY = "senseops-loop/asr-model"
# The quality gate's golden set: the held-out clips (raw/held-out/…) listed in this manifest under the bucket.
GOLDEN_MANIFEST = "golden/quality-gate.jsonl"
GATE_MAX_DEGRADATION = 0.05  # candidate CER may exceed stable's by at most 5 points on the golden set
GATE_INTERVAL_S = 120
# Rollout analysis: the runtime's own metrics through the operator's built-in templates, candidate relative
# to stable (on a shared 2-core machine the tiny model's own p95 RTF swings from 0.05 to 0.5 with the load;
# a ratio cancels that). A candidate of the same size measures about 1 — but while another job loaded both
# cores (mypy during a run) the good tuned model measured 3.48 and 3.25 at 5 % and was rolled back. The
# quality gate is what stops a wrong model here, so the latency analysis only has to catch a much slower one
# (the planted full-size model measured 3.0–5.8) and tolerates two bad readings.
RTF_P95_VS_STABLE_MAX = 4.0
FINAL_LATENCY_P95_VS_STABLE_MAX = 2.5
ANALYSIS_FAILURE_LIMIT = 2
ANALYSIS_INTERVAL_S = 15
PAUSE_AT_5_S = 60
PAUSE_AT_50_S = 40


def store_uri() -> str:
    return f"s3://{BUCKET}/"


def runtime(model_uri: str, sha256: str, model_dir: str) -> list[dict[str, Any]]:
    """The base runtime (Deployment + Service) on the process node, recording consented streams to MinIO.

    The model comes from the store like a released one (the hostPath of the test workload stays mounted,
    unused); store credentials come from the ``store`` Secret."""
    from pathlib import Path

    objs = runtime_deployment(NAMESPACE, Path(model_dir), replicas=1, name=DEPLOYMENT, version=BASE_MODEL,
                              model_sha256=sha256, extra_env={
                                  "SENSEOPS_MODEL_URI": model_uri,
                                  "SENSEOPS_RECORDING_ENABLED": "true",
                                  "SENSEOPS_RECORDING_STORE_URI": store_uri(),
                                  "SENSEOPS_SPOOL_DIR": "/tmp/spool",
                              })
    deployment, service = objs
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"secretRef": {"name": STORE_SECRET}}]
    # The Rollout moves the stable pods' version label to the new model on promotion: selectors must not
    # hold it (a Deployment's selector is immutable and must keep matching its template).
    stable = {k: v for k, v in deployment["spec"]["selector"]["matchLabels"].items() if k != VERSION_LABEL}
    deployment["spec"]["selector"]["matchLabels"] = stable
    service["spec"]["selector"] = dict(stable)
    return objs


def routing() -> list[dict[str, Any]]:
    """The Gateway (served by the stand-in's HAProxy) and the HTTPRoute the Rollout moves weights on."""
    return [gateway(NAMESPACE, GATEWAY, DEFAULT_CLASS), http_route(NAMESPACE, ROUTE, GATEWAY, [(DEPLOYMENT, 100)])]


def asr_model(name: str, uri: str, sha256: str, lineage: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"version": name, "artifact": {"uri": uri, "sha256": sha256, "format": "funasr"}}
    if lineage:
        spec["lineage"] = lineage
    return {"apiVersion": API, "kind": "ASRModel", "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def retrain_policy(anchors: list[str], min_new_hours: float, window_start: str, golden_key: str,
                   registry_host: str, prometheus_url: str) -> dict[str, Any]:
    """The RetrainPolicy that closes the loop: when the anchors' new reviewed audio reaches ``min_new_hours``
    it creates FineTuneJob ``retrain-<n>`` (training, evaluation on the held-out set, image build to the
    stack's registry, ASRModel ``tuned-<n>``); when that succeeds, its release template creates Rollout
    ``retrain-<n>`` from the model serving now to the new one."""
    return {
        "apiVersion": API, "kind": "RetrainPolicy", "metadata": {"name": POLICY, "namespace": NAMESPACE},
        "spec": {
            "source": store_uri(), "anchors": anchors, "minNewHours": round(min_new_hours, 4),
            "thresholdScope": "Total", "checkIntervalSeconds": 10, "concurrencyPolicy": "Forbid",
            "template": {"metadata": {"labels": {"app.kubernetes.io/part-of": "senseops-loop"}}, "spec": {
                "baseModel": {"name": BASE_MODEL},
                "dataset": {"windowStart": window_start,
                            "heldOut": {"validationFraction": 0.1, "goldenSetUri": f"{store_uri()}{golden_key}"}},
                **tiny_cpu_training(),
                "output": {"modelName": TUNED_PREFIX, "storeUri": store_uri()},
                "image": {"registry": registry_host, "repository": IMAGE_REPOSITORY, "pushSecret": PUSH_SECRET},
                "evaluationGate": {"minImprovement": 0.05},
                "trainerImage": "senseops/trainer:test",
                "storeSecret": STORE_SECRET,
            }},
            "release": {"metadata": {"labels": {"app.kubernetes.io/part-of": "senseops-loop"}},
                        "spec": rollout_template(prometheus_url)},
        },
    }


def rollout(name: str, stable: str, candidate: str, prometheus_url: str) -> dict[str, Any]:
    """A Rollout made by hand with the policy's release template (the planted round)."""
    return {"apiVersion": API, "kind": "Rollout", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {**rollout_template(prometheus_url), "stableModel": {"name": stable},
                     "candidateModel": {"name": candidate}}}


def golden_manifest(held_out_jsonl: str) -> str:
    """The quality gate's manifest (key relative to the bucket, text, language) for the held-out set's lines."""
    rows = [json.loads(line) for line in held_out_jsonl.splitlines() if line.strip()]
    return "".join(json.dumps({"key": r["audio_key"], "text": r["text"], "language": r["lang"]},
                              ensure_ascii=False) + "\n" for r in rows)


def rollout_template(prometheus_url: str) -> dict[str, Any]:
    """5 → 50 → 100: before any traffic, and every GATE_INTERVAL_S after, the golden-set quality gate (held-out
    domain speech through candidate and stable pods); after each pause, analysis on the candidate pods' RTF and
    final latency (the runtime's metrics in Prometheus)."""
    def metric(metric_name: str, template: str, success_max: float) -> dict[str, Any]:
        return {"name": metric_name, "successMax": success_max, "intervalSeconds": ANALYSIS_INTERVAL_S,
                "failureLimit": ANALYSIS_FAILURE_LIMIT, "inconclusiveLimit": 20,
                "provider": {"prometheus": {"address": prometheus_url, "template": template, "window": "2m"}}}

    return {
        "target": {"deployment": DEPLOYMENT, "service": DEPLOYMENT, "port": 80},
        "trafficRouting": {"gatewayAPI": {"httpRoute": ROUTE}},
        "steps": [{"setWeight": 5}, {"pause": {"durationSeconds": PAUSE_AT_5_S}}, {"analysis": {}},
                  {"setWeight": 50}, {"pause": {"durationSeconds": PAUSE_AT_50_S}}, {"analysis": {}},
                  {"setWeight": 100}],
        "analysis": {"metrics": [
            metric("rtf-p95-vs-stable", "rtf-p95-vs-stable", RTF_P95_VS_STABLE_MAX),
            metric("final-latency-p95-vs-stable", "p95-final-latency-vs-stable", FINAL_LATENCY_P95_VS_STABLE_MAX)]},
        "qualityGate": {"goldenSet": {"uri": store_uri(), "manifest": GOLDEN_MANIFEST}, "metric": "cer",
                        "maxDegradation": GATE_MAX_DEGRADATION, "intervalSeconds": GATE_INTERVAL_S,
                        "requestTimeoutSeconds": 120, "failureLimit": 0, "inconclusiveLimit": 3},
        "progressDeadlineSeconds": 600, "scaleDownDelaySeconds": 5,
        # Streams still open on an aborted candidate are drained when its pods go (the utterance in progress
        # gets its final, then close 1012 "reconnect"); the streamers, like the app, resume on stable through
        # the gateway, so a short delay loses nothing (the loop checks: no failed stream after the rollback).
        "abortScaleDownDelaySeconds": 5,
    }
