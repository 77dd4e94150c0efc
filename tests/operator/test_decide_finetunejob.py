"""Table tests for the FineTuneJob decisions (operator/senseops_operator/decide/finetunejob.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from senseops_operator.decide import finetunejob as f
from senseops_operator.decide.common import find_condition

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "baseModel": {"name": "base"},
    "dataset": {"source": "s3://rec/", "anchorIds": ["a1", "a2"], "minHours": 1.0,
                "filters": {"minConfidence": 0.8, "minDurationSeconds": 1, "maxDurationSeconds": 20}},
    "output": {"modelName": "tuned", "storeUri": "s3://models/", "version": "v2"},
}
READY = f.Readiness({"a1": 0.7, "a2": 0.4}, {"a1": 300, "a2": 170}, 1.0)
SHORT = f.Readiness({"a1": 0.2, "a2": 0.1}, {"a1": 90, "a2": 40}, 1.0)
REPORT = f.EvaluationReport("s3://models/reports/j/report.json", True, "new 0.210 < base 0.540", "golden",
                            0.54, 0.21, None, None, 0.03)
BAD_REPORT = replace(REPORT, gate_passed=False, gate_reason="new 0.560 is not better than base 0.540", new_cer=0.56)
PACKAGE = f.PackagedModel("s3://models/models/tuned/v2/", "ab" * 32, 12345)
RUNNING = f.TrainingJobState(exists=True, active=1, pods=1)


def obs(**changes: Any) -> f.FineTuneJobObservation:
    base = f.FineTuneJobObservation(generation=1, name="j", model_phases={"base": "Ready", "tuned": None},
                                    base_model_uri="s3://models/models/base/v1/", readiness=READY)
    return replace(base, **changes)


def run(status: dict[str, Any] | None = None, **changes: Any) -> f.FineTuneJobDecision:
    return f.decide(SPEC, status or {}, obs(**changes), NOW)


@pytest.mark.parametrize(("name", "changes", "status", "stage", "actions", "condition", "reason"), [
    ("base model missing", {"model_phases": {"base": None, "tuned": None}, "base_model_uri": None}, {},
     "Pending", [], "ModelsResolved", "ModelNotFound"),
    ("base model verifying", {"model_phases": {"base": "Verifying", "tuned": None}, "base_model_uri": None}, {},
     "Pending", [], "ModelsResolved", "ModelNotReady"),
    ("too little data", {"readiness": SHORT}, {}, "WaitingForData", [], "DataReady", "NotEnoughData"),
    ("enough data starts training", {}, {"stage": "WaitingForData"}, "PreparingData", [f.CreateTrainingJob],
     "DataReady", "EnoughData"),
    ("running: trainer collects", {"job": RUNNING}, {"stage": "PreparingData", "progress": {"stage": "collect"}},
     "PreparingData", [], "Suspended", "Running"),
    ("running: trainer trains", {"job": RUNNING}, {"stage": "PreparingData", "progress": {"stage": "train"}},
     "Training", [], "Suspended", "Running"),
    ("running: trainer evaluates", {"job": RUNNING}, {"stage": "Training", "progress": {"stage": "evaluate"}},
     "Evaluating", [], "Suspended", "Running"),
    ("suspended", {"job": replace(RUNNING, active=0, suspended=True)}, {"stage": "Training"}, "Training", [],
     "Suspended", "RunPolicySuspend"),
    ("gate failed (exit 3)", {"job": replace(RUNNING, active=0, failed_reason="PodFailurePolicy", exit_codes=(3,)),
                              "report": BAD_REPORT}, {"stage": "Evaluating"}, "Failed", [], "Succeeded", "GateFailed"),
    ("bad settings (exit 64)", {"job": replace(RUNNING, active=0, failed_reason="PodFailurePolicy",
                                               exit_codes=(64,))}, {"stage": "PreparingData"}, "Failed", [],
     "Succeeded", "BadSettings"),
    ("crashes beyond the backoff limit", {"job": replace(RUNNING, active=0, failed_reason="BackoffLimitExceeded",
                                                         exit_codes=(137, 1, 1), pods=3)}, {"stage": "Training"},
     "Failed", [], "Succeeded", "TrainingFailed"),
    ("deadline", {"job": replace(RUNNING, active=0, failed_reason="DeadlineExceeded")}, {"stage": "Training"},
     "Failed", [], "Succeeded", "DeadlineExceeded"),
    ("succeeded, package not yet visible", {"job": replace(RUNNING, active=0, succeeded=True)},
     {"stage": "Packaging"}, "Packaging", [], None, None),
    ("succeeded: publish the model", {"job": replace(RUNNING, active=0, succeeded=True), "package": PACKAGE,
                                      "report": REPORT}, {"stage": "Packaging"}, "Packaging", [f.CreateModel],
     None, None),
    ("model published", {"job": replace(RUNNING, active=0, succeeded=True), "package": PACKAGE, "report": REPORT,
                         "model_phases": {"base": "Ready", "tuned": "Verifying"}, "output_model_owner": "j"},
     {"stage": "Packaging"}, "Succeeded", [], "Succeeded", "ModelPublished"),
    ("output name taken by someone else", {"job": replace(RUNNING, active=0, succeeded=True), "package": PACKAGE,
                                           "model_phases": {"base": "Ready", "tuned": "Ready"},
                                           "output_model_owner": None}, {"stage": "Packaging"}, "Failed", [],
     "Succeeded", "OutputExists"),
])
def test_stage_machine(name: str, changes: dict[str, Any], status: dict[str, Any], stage: str,
                       actions: list[type], condition: str | None, reason: str | None) -> None:
    d = run(status, **changes)
    assert (d.status["phase"], d.status["stage"]) == (stage, stage), d.status["message"]
    assert [type(a) for a in d.actions] == actions
    if condition is not None:
        cond = find_condition(d.status["conditions"], condition)
        assert cond is not None and cond["reason"] == reason, d.status["conditions"]


def test_waiting_for_data_shows_hours_and_backs_off() -> None:
    first = run(readiness=SHORT)
    assert first.status["data"]["summary"] == "0.30/1h"
    assert {a["anchorId"]: a["hours"] for a in first.status["data"]["anchors"]} == {"a1": 0.2, "a2": 0.1}
    assert "0.30 of 1 hours" in first.status["message"]
    delays = []
    status: dict[str, Any] = {}
    for _ in range(7):
        d = run(status, readiness=SHORT)
        delays.append(d.requeue_after)
        status = {**status, **d.status}
    assert delays == [30, 60, 120, 240, 480, 600, 600]


def test_gate_failure_says_the_numbers() -> None:
    d = run({"stage": "Evaluating"}, job=replace(RUNNING, active=0, failed_reason="PodFailurePolicy",
                                                 exit_codes=(1, 3), pods=2), report=BAD_REPORT)
    assert "CER 0.540 -> 0.560" in d.status["message"] and "golden set" in d.status["message"]
    assert d.status["metrics"] == {"baseCer": 0.54, "newCer": 0.56, "rtf": 0.03}
    assert any(e.reason == "GateFailed" and e.type == "Warning" for e in d.events)


def test_published_model_carries_artifact_lineage_and_evaluation() -> None:
    d = run({"stage": "Packaging"}, job=replace(RUNNING, active=0, succeeded=True), package=PACKAGE, report=REPORT)
    (create,) = d.actions
    assert isinstance(create, f.CreateModel)
    assert create.name == "tuned" and create.labels == {"senseops.dev/finetunejob": "j"}
    assert create.spec["artifact"] == {"uri": PACKAGE.uri, "sha256": PACKAGE.sha256, "format": "funasr",
                                       "sizeBytes": 12345}
    assert create.spec["lineage"] == {"baseModel": "base", "fineTuneJob": "j", "dataset": "s3://rec/"}
    assert create.spec["evaluation"]["cer"] == 0.21 and create.spec["version"] == "v2"


def test_finished_jobs_stay_finished() -> None:
    for stage in ("Succeeded", "Failed"):
        d = run({"stage": stage}, job=f.TrainingJobState(exists=False))
        assert d.actions == () and "stage" not in d.status


def test_a_job_is_created_once() -> None:
    """After the Job exists, no reconcile asks for another (a restarted operator finds it)."""
    started = run({"stage": "WaitingForData"})
    assert [type(a) for a in started.actions] == [f.CreateTrainingJob]
    again = run(started.status, job=RUNNING)
    assert again.actions == ()


def test_stage_changes_post_events() -> None:
    d = run({"stage": "PreparingData"}, job=RUNNING)
    assert not any(e.reason.startswith("Stage") for e in d.events)
    d = run({"stage": "PreparingData", "progress": {"stage": "train"}}, job=RUNNING)
    assert [e.reason for e in d.events if e.reason.startswith("Stage")] == ["StageTraining"]


@pytest.mark.parametrize(("segments", "hours", "counts"), [
    ([f.Segment("a1", "s1", 3600, 0.9)], {"a1": 0.0, "a2": 0.0}, {"a1": 0, "a2": 0}),  # longer than 20 s
    ([f.Segment("a1", "s1", 10, 0.5)], {"a1": 0.0, "a2": 0.0}, {"a1": 0, "a2": 0}),  # low confidence
    ([f.Segment("a1", "s1", 18, 0.9), f.Segment("a1", "s1", 18, 0.9)], {"a1": 0.005, "a2": 0.0},
     {"a1": 1, "a2": 0}),  # the same segment id counts once
    ([f.Segment("a2", "s1", 9, 0.95), f.Segment("zz", "s2", 9, 0.95)], {"a1": 0.0, "a2": 0.0025},
     {"a1": 0, "a2": 1}),  # other anchors are not counted
])
def test_readiness_counts_what_passes_the_index_filters(segments: list[f.Segment], hours: dict[str, float],
                                                        counts: dict[str, int]) -> None:
    got = f.readiness(segments, ["a1", "a2"], SPEC["dataset"]["filters"], 1.0)
    assert {a: round(h, 6) for a, h in got.hours.items()} == hours and dict(got.segments) == counts
    assert not got.ready
