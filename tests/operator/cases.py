"""Invalid resources and the field the API server must name when it refuses them.

Each case starts from a valid object, changes it with `mutate`, and says which field path must appear in
the refusal. Cases with `update=True` create the valid object first and then apply the change (rules
that only exist for updates, such as immutability).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SHA = "ab" * 32


def asr_model(name: str = "m-valid") -> Obj:
    return {
        "apiVersion": "senseops.dev/v1alpha1",
        "kind": "ASRModel",
        "metadata": {"name": name},
        "spec": {
            "version": "v1",
            "artifact": {"uri": "s3://models/sensevoice/v1/", "sha256": SHA, "format": "funasr"},
            "languages": ["zh", "en"],
        },
    }


def fine_tune_job(name: str = "ftj-valid") -> Obj:
    return {
        "apiVersion": "senseops.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "base"},
            "dataset": {
                "source": "s3://recordings/",
                "anchorIds": ["1001"],
                "window": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-20T00:00:00Z"},
            },
            "hyperparameters": {"learningRate": 2e-5, "epochs": 2},
            "output": {"modelName": "tuned", "storeUri": "s3://models/"},
        },
    }


def rollout(name: str = "ro-valid") -> Obj:
    return {
        "apiVersion": "senseops.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "target": {"deployment": "asr", "service": "asr"},
            "stableModel": {"name": "stable"},
            "candidateModel": {"name": "candidate"},
            "trafficRouting": {"nginx": {"stableIngress": "asr"}},
            "steps": [{"setWeight": 5}, {"pause": {"durationSeconds": 60}}, {"setWeight": 50},
                      {"analysis": {}}, {"setWeight": 100}],
            "analysis": {"metrics": [{
                "name": "errors",
                "provider": {"prometheus": {"address": "http://prom:9090", "query": "sum(up)"}},
                "successMax": 0.01,
            }]},
        },
    }


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[str], Obj]
    mutate: Callable[[Obj], None]
    field: str  # must appear in the API server's refusal
    update: bool = False


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def mutate(obj: Obj) -> None:
        node = obj
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        last = keys[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


_DELETE = object()


def _both(*mutations: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def mutate(obj: Obj) -> None:
        for m in mutations:
            m(obj)
    return mutate


def _steps(*steps: Obj) -> Callable[[Obj], None]:
    return _set("spec.steps", list(steps))


CASES: list[Case] = [
    # --- ASRModel
    Case("asr-no-spec", asr_model, _set("spec", _DELETE), "spec"),
    Case("asr-no-artifact", asr_model, _set("spec.artifact", _DELETE), "spec.artifact"),
    Case("asr-no-version", asr_model, _set("spec.version", _DELETE), "spec.version"),
    Case("asr-http-uri", asr_model, _set("spec.artifact.uri", "https://example.com/m.pt"), "spec.artifact.uri"),
    Case("asr-cos-uri-without-key", asr_model, _set("spec.artifact.uri", "cos://bucket-125"), "spec.artifact.uri"),
    Case("asr-relative-file-uri", asr_model, _set("spec.artifact.uri", "file://relative/path"), "spec.artifact.uri"),
    Case("asr-short-sha", asr_model, _set("spec.artifact.sha256", "abc123"), "spec.artifact.sha256"),
    Case("asr-uppercase-sha", asr_model, _set("spec.artifact.sha256", "AB" * 32), "spec.artifact.sha256"),
    Case("asr-unknown-format", asr_model, _set("spec.artifact.format", "tflite"), "spec.artifact.format"),
    Case("asr-zero-size", asr_model, _set("spec.artifact.sizeBytes", 0), "spec.artifact.sizeBytes"),
    Case("asr-bad-version", asr_model, _set("spec.version", "v 1"), "spec.version"),
    Case("asr-unknown-language", asr_model, _set("spec.languages", ["fr"]), "spec.languages[0]"),
    Case("asr-negative-cer", asr_model, _set("spec.evaluation", {"cer": -0.1}), "spec.evaluation.cer"),
    Case("asr-bad-image", asr_model, _set("spec.image", {"reference": "Not An Image"}), "spec.image.reference"),
    Case("asr-own-base", asr_model, _set("spec.lineage", {"baseModel": "m-valid"}), "spec.lineage.baseModel"),
    Case("asr-artifact-immutable", asr_model, _set("spec.artifact.sha256", "cd" * 32), "spec.artifact", update=True),
    Case("asr-version-immutable", asr_model, _set("spec.version", "v2"), "spec.version", update=True),
    # --- FineTuneJob
    Case("ftj-no-base", fine_tune_job, _set("spec.baseModel", _DELETE), "spec.baseModel"),
    Case("ftj-zero-lr", fine_tune_job, _set("spec.hyperparameters.learningRate", 0),
         "spec.hyperparameters.learningRate"),
    Case("ftj-negative-lr", fine_tune_job, _set("spec.hyperparameters.learningRate", -1e-5),
         "spec.hyperparameters.learningRate"),
    Case("ftj-zero-epochs", fine_tune_job, _set("spec.hyperparameters.epochs", 0), "spec.hyperparameters.epochs"),
    Case("ftj-too-many-gpus", fine_tune_job, _set("spec.resources", {"gpus": 64}), "spec.resources.gpus"),
    Case("ftj-bad-memory", fine_tune_job, _set("spec.resources", {"memory": "lots"}), "spec.resources.memory"),
    Case("ftj-too-many-nodes", fine_tune_job, _set("spec.resources", {"nodes": 65}), "spec.resources.nodes"),
    Case("ftj-zero-nodes", fine_tune_job, _set("spec.resources", {"nodes": 0}), "spec.resources.nodes"),
    Case("ftj-multinode-long-name", fine_tune_job, _both(_set("spec.resources", {"nodes": 2}),
                                                         _set("metadata.name", "n" * 55)), "spec.resources.nodes"),
    Case("ftj-no-anchors", fine_tune_job, _set("spec.dataset.anchorIds", []), "spec.dataset.anchorIds"),
    Case("ftj-bad-anchor", fine_tune_job, _set("spec.dataset.anchorIds", ["a/b"]), "spec.dataset.anchorIds[0]"),
    Case("ftj-http-source", fine_tune_job, _set("spec.dataset.source", "http://169.254.169.254/"),
         "spec.dataset.source"),
    Case("ftj-window-backwards", fine_tune_job,
         _set("spec.dataset.window", {"start": "2026-11-20T00:00:00Z", "end": "2026-11-01T00:00:00Z"}),
         "spec.dataset.window"),
    Case("ftj-confidence-above-1", fine_tune_job, _set("spec.dataset.filters", {"minConfidence": 1.5}),
         "spec.dataset.filters.minConfidence"),
    Case("ftj-durations-inverted", fine_tune_job,
         _set("spec.dataset.filters", {"minDurationSeconds": 20, "maxDurationSeconds": 10}), "spec.dataset.filters"),
    Case("ftj-held-out-too-big", fine_tune_job, _set("spec.dataset.heldOut", {"validationFraction": 0.9}),
         "spec.dataset.heldOut.validationFraction"),
    Case("ftj-output-equals-base", fine_tune_job, _set("spec.output.modelName", "base"), "spec.output.modelName"),
    Case("ftj-output-bad-name", fine_tune_job, _set("spec.output.modelName", "Bad_Name"), "spec.output.modelName"),
    Case("ftj-negative-backoff", fine_tune_job, _set("spec.runPolicy", {"backoffLimit": -1}),
         "spec.runPolicy.backoffLimit"),
    Case("ftj-unknown-gate-metric", fine_tune_job, _set("spec.evaluationGate", {"metric": "bleu"}),
         "spec.evaluationGate.metric"),
    Case("ftj-spec-immutable", fine_tune_job, _set("spec.hyperparameters.epochs", 3), "spec", update=True),
    # --- Rollout
    Case("ro-weight-over-100", rollout, _steps({"setWeight": 150}), "spec.steps[0].setWeight"),
    Case("ro-weights-decreasing", rollout, _steps({"setWeight": 50}, {"setWeight": 5}, {"setWeight": 100}),
         "spec.steps"),
    Case("ro-weights-repeat", rollout, _steps({"setWeight": 50}, {"setWeight": 50}, {"setWeight": 100}), "spec.steps"),
    Case("ro-not-ending-at-100", rollout, _steps({"setWeight": 5}, {"setWeight": 50}), "spec.steps"),
    Case("ro-no-weights", rollout, _steps({"pause": {}}), "spec.steps"),
    Case("ro-no-steps", rollout, _steps(), "spec.steps"),
    Case("ro-step-two-actions", rollout, _steps({"setWeight": 5, "pause": {}}, {"setWeight": 100}), "spec.steps[0]"),
    Case("ro-empty-step", rollout, _steps({"setWeight": 5}, {}, {"setWeight": 100}), "spec.steps[1]"),
    Case("ro-stable-is-candidate", rollout, _set("spec.candidateModel.name", "stable"), "spec.candidateModel.name"),
    Case("ro-two-routers", rollout, _set("spec.trafficRouting.gatewayAPI", {"httpRoute": "asr"}),
         "spec.trafficRouting"),
    Case("ro-no-router", rollout, _set("spec.trafficRouting", {}), "spec.trafficRouting"),
    Case("ro-analysis-without-metrics", rollout, _set("spec.analysis", _DELETE), "spec.analysis"),
    Case("ro-interval-too-short", rollout, _set("spec.analysis.metrics.0.intervalSeconds", 1),
         "spec.analysis.metrics[0].intervalSeconds"),
    Case("ro-metric-without-threshold", rollout, _set("spec.analysis.metrics.0.successMax", _DELETE),
         "spec.analysis.metrics[0]"),
    Case("ro-prometheus-not-http", rollout, _set("spec.analysis.metrics.0.provider.prometheus.address", "ftp://x"),
         "spec.analysis.metrics[0].provider.prometheus.address"),
    Case("ro-deadline-too-short", rollout, _set("spec.progressDeadlineSeconds", 5), "spec.progressDeadlineSeconds"),
    Case("ro-bad-port", rollout, _set("spec.target.port", 70000), "spec.target.port"),
]


def build(case: Case, name: str) -> tuple[Obj, Obj]:
    """(valid object, invalid object) for a case, both with metadata.name = name."""
    valid = case.make(name)
    if case.id == "asr-own-base":
        valid["metadata"]["name"] = "m-valid"
    invalid = copy.deepcopy(valid)
    case.mutate(invalid)
    return valid, invalid
