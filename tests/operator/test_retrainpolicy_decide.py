"""Table tests for the RetrainPolicy decisions (operator/senseops_operator/decide/retrainpolicy.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from senseops_operator.decide import retrainpolicy as r
from senseops_operator.decide.common import find_condition
from senseops_operator.decide.finetunejob import Segment
from senseops_operator.models import FineTuneJobSpec, RetrainPolicySpec, RetrainPolicyStatus

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
CUTOFF = "2026-11-29T08:00:00Z"
EARLIER = "2026-11-20T00:00:00Z"
WIRE: dict[str, Any] = {
    "source": "s3://rec/",
    "anchors": ["a1", "a2"],
    "minNewHours": 1.0,
    "filters": {"minConfidence": 0.8, "minDurationSeconds": 1, "maxDurationSeconds": 30},
    "template": {
        "metadata": {"labels": {"team": "asr"}},
        "spec": {"baseModel": {"name": "base"}, "output": {"modelName": "tuned", "storeUri": "s3://models/"},
                 "hyperparameters": {"epochs": 3}, "storeSecret": "store",
                 "dataset": {"windowStart": "2026-11-01T00:00:00Z"}},
    },
}


def spec(**changes: Any) -> RetrainPolicySpec:
    return RetrainPolicySpec.model_validate({**WIRE, **changes})


def segs(anchor: str, seconds: float, count: int, confidence: float = 0.9, prefix: str = "s") -> tuple[Segment, ...]:
    """`count` segments of `seconds` each."""
    return tuple(Segment(anchor, f"{prefix}{i}", seconds, confidence) for i in range(count))


HOUR_A1 = segs("a1", 20.0, 180)  # exactly 1 h on a1
HALF_A1, HALF_A2 = segs("a1", 20.0, 90), segs("a2", 20.0, 90, prefix="t")
LOW_CONFIDENCE = segs("a1", 20.0, 360, confidence=0.5)


def job(name: str, number: int, stage: str | None, owned: bool = True, **kw: Any) -> r.ObservedJob:
    return r.ObservedJob(name=name, owned=owned, number=number, stage=stage, **kw)


def observation(segments: tuple[Segment, ...] = (), jobs: tuple[r.ObservedJob, ...] = (),
                foreign: frozenset[str] = frozenset()) -> r.RetrainObservation:
    return r.RetrainObservation(generation=2, name="pol", namespace="ns", uid="uid-1", segments=segments,
                                jobs=jobs, foreign_names=foreign)


LAST = {"number": 1, "time": EARLIER, "cutoff": EARLIER, "fineTuneJob": "pol-1"}


def run(wire: RetrainPolicySpec | None = None, status: dict[str, Any] | None = None,
        **obs: Any) -> r.RetrainDecision:
    return r.decide(wire or spec(), RetrainPolicyStatus.model_validate(status or {}), observation(**obs), NOW)


def kinds(decision: r.RetrainDecision) -> list[str]:
    return [type(a).__name__ for a in decision.actions]


@pytest.mark.parametrize(("name", "policy", "status", "obs", "actions", "phase", "blocked"), [
    ("nothing recorded yet", spec(), {}, {}, [], "Watching", "NotBlocked"),
    ("below the threshold", spec(), {}, {"segments": HALF_A1}, [], "Watching", "NotBlocked"),
    ("threshold reached on one anchor", spec(), {}, {"segments": HOUR_A1}, ["CreateFineTuneJob", "WriteAudit"],
     "Running", "NotBlocked"),
    ("per anchor: two halves do not add up", spec(), {}, {"segments": HALF_A1 + HALF_A2}, [], "Watching",
     "NotBlocked"),
    ("total scope: two halves add up", spec(thresholdScope="Total"), {}, {"segments": HALF_A1 + HALF_A2},
     ["CreateFineTuneJob", "WriteAudit"], "Running", "NotBlocked"),
    ("filtered audio does not count", spec(), {}, {"segments": LOW_CONFIDENCE}, [], "Watching", "NotBlocked"),
    ("another anchor's audio does not count", spec(), {}, {"segments": segs("zz", 20.0, 400)}, [], "Watching",
     "NotBlocked"),
    ("suspended: measures, creates nothing", spec(suspend=True), {}, {"segments": HOUR_A1}, [], "Suspended",
     "Suspended"),
    ("suspended below threshold", spec(suspend=True), {}, {"segments": HALF_A1}, [], "Suspended", "Suspended"),
    ("forbid with an active job", spec(), {"lastTrigger": LAST},
     {"segments": HOUR_A1, "jobs": (job("pol-1", 1, "Training"),)}, [], "Running", "ConcurrencyForbid"),
    ("forbid: a pending job is active too", spec(), {"lastTrigger": LAST},
     {"segments": HOUR_A1, "jobs": (job("pol-1", 1, None),)}, [], "Running", "ConcurrencyForbid"),
    ("forbid with only finished jobs", spec(), {"lastTrigger": LAST},
     {"segments": HOUR_A1, "jobs": (job("pol-1", 1, "Succeeded"),)}, ["CreateFineTuneJob", "WriteAudit"],
     "Running", "NotBlocked"),
    ("allow with an active job", spec(concurrencyPolicy="Allow"), {"lastTrigger": LAST},
     {"segments": HOUR_A1, "jobs": (job("pol-1", 1, "Training"),)}, ["CreateFineTuneJob", "WriteAudit"],
     "Running", "NotBlocked"),
    ("a foreign job holds the next name", spec(), {}, {"segments": HOUR_A1, "foreign": frozenset({"pol-1"})}, [],
     "Watching", "NameTaken"),
    ("a job of a deleted namesake policy is not ours", spec(), {},
     {"segments": HALF_A1, "jobs": (job("pol-1", 1, "Training", owned=False),)}, [], "Watching", "NotBlocked"),
])
def test_trigger_table(name: str, policy: RetrainPolicySpec, status: dict[str, Any], obs: dict[str, Any],
                       actions: list[str], phase: str, blocked: str) -> None:
    decision = run(policy, status, **obs)
    assert kinds(decision) == actions, name
    assert decision.status["phase"] == phase, name
    cond = find_condition(decision.status["conditions"], "TriggerBlocked")
    assert cond is not None and cond["reason"] == blocked, (name, cond)
    assert decision.requeue_after == policy.check_interval_seconds


def test_hours_per_anchor_and_summary_are_shown() -> None:
    status = run(segments=HALF_A1 + segs("a2", 10.0, 36, prefix="t")).status
    data = status["newData"]
    assert data["anchors"] == [{"anchorId": "a1", "hours": 0.5, "segments": 90},
                               {"anchorId": "a2", "hours": 0.1, "segments": 36}]
    assert data["hours"] == 0.5 and data["neededHours"] == 1.0 and data["summary"] == "0.50/1h"
    assert "waiting for new audio: 0.50 of 1 new hours of good audio on anchor a1" in status["message"]


def test_trigger_creates_the_templated_job_with_deterministic_names() -> None:
    decision = run(status={"lastTrigger": {**LAST, "number": 4, "fineTuneJob": "pol-4"}}, segments=HOUR_A1)
    create = decision.actions[0]
    assert isinstance(create, r.CreateFineTuneJob)
    assert create.name == "pol-5"
    assert create.labels == {"team": "asr", r.LABEL_POLICY: "pol", r.LABEL_TRIGGER: "5"}
    assert create.annotations[r.ANNOTATION_CUTOFF] == CUTOFF
    assert json.loads(create.annotations[r.ANNOTATION_HOURS]) == {"a1": 1.0, "a2": 0.0}
    job_spec = FineTuneJobSpec.model_validate(create.spec)  # a valid FineTuneJob spec
    assert job_spec.output.model_name == "tuned-5" and job_spec.output.version == "pol-5"
    assert job_spec.dataset.anchor_ids == ["a1", "a2"] and job_spec.dataset.source == "s3://rec/"
    assert job_spec.dataset.window is not None
    assert (job_spec.dataset.window.start, job_spec.dataset.window.end) == ("2026-11-01T00:00:00Z", CUTOFF)
    assert job_spec.dataset.min_hours == 1.0 and job_spec.dataset.filters.min_confidence == 0.8
    assert job_spec.hyperparameters.epochs == 3 and job_spec.store_secret == "store"
    assert job_spec.base_model.name == "base"
    last = decision.status["lastTrigger"]
    assert last["number"] == 5 and last["fineTuneJob"] == "pol-5" and last["cutoff"] == CUTOFF
    # The cut-off moves: nothing is new right after the trigger.
    assert decision.status["newData"]["since"] == CUTOFF and decision.status["newData"]["hours"] == 0
    assert decision.status["active"] == [{"name": "pol-5"}] and decision.status["activeCount"] == 1
    assert [e.reason for e in decision.events] == ["Triggered"]


def test_audit_record_says_who_what_when_and_how_much() -> None:
    decision = run(status={"lastTrigger": LAST}, segments=HOUR_A1 + HALF_A2)
    audit = decision.actions[1]
    assert isinstance(audit, r.WriteAudit)
    assert audit.key == "audit/retrain/ns/pol/20261129T080000Z-pol-2.json"
    assert decision.status["lastTrigger"]["auditKey"] == audit.key
    rec = audit.record
    assert rec["actor"] == "senseops-operator" and rec["policy"] == {"namespace": "ns", "name": "pol",
                                                                     "uid": "uid-1", "generation": 2}
    assert rec["time"] == CUTOFF and rec["fineTuneJob"] == "pol-2" and rec["trigger"] == 2
    assert rec["newAudio"]["hoursPerAnchor"] == {"a1": 1.0, "a2": 0.5}
    assert rec["newAudio"]["since"] == EARLIER and rec["newAudio"]["cutoff"] == CUTOFF
    assert rec["outputModel"] == {"name": "tuned-2", "version": "pol-2"} and rec["baseModel"] == "base"


@pytest.mark.parametrize(("name", "status", "jobs", "policy", "expected"), [
    ("first trigger counts all audio", {}, (), spec(), None),
    ("first trigger counts from spec.since", {}, (), spec(since=EARLIER), EARLIER),
    ("later triggers count from the last cut-off", {"lastTrigger": LAST}, (), spec(since="2026-01-01T00:00:00Z"),
     EARLIER),
    ("a job whose status write was lost moves the watermark", {"lastTrigger": LAST},
     (job("pol-2", 2, None, trigger_time=CUTOFF, cutoff=CUTOFF),), spec(), CUTOFF),
    ("a namesake's job does not", {"lastTrigger": LAST},
     (job("pol-2", 2, None, owned=False, trigger_time=CUTOFF, cutoff=CUTOFF),), spec(), EARLIER),
])
def test_watermark(name: str, status: dict[str, Any], jobs: tuple[r.ObservedJob, ...], policy: RetrainPolicySpec,
                   expected: str | None) -> None:
    assert r.watermark(policy, RetrainPolicyStatus.model_validate(status), jobs) == expected, name


def test_a_lost_status_write_adopts_the_job_instead_of_creating_another() -> None:
    lost = job("pol-2", 2, None, trigger_time=CUTOFF, cutoff=CUTOFF, new_hours={"a1": 1.2, "a2": 0.0})
    decision = run(status={"lastTrigger": LAST}, segments=HOUR_A1, jobs=(lost,))
    assert kinds(decision) == ["WriteAudit"]  # the audit record is rewritten (same key), no second job
    audit = decision.actions[0]
    assert isinstance(audit, r.WriteAudit) and audit.key == "audit/retrain/ns/pol/20261129T080000Z-pol-2.json"
    assert audit.record["newAudio"]["hoursPerAnchor"] == {"a1": 1.2, "a2": 0.0}
    assert decision.status["lastTrigger"]["number"] == 2 and decision.status["lastTrigger"]["fineTuneJob"] == "pol-2"
    cond = find_condition(decision.status["conditions"], "TriggerBlocked")
    assert cond is not None and cond["reason"] == "ConcurrencyForbid"
    assert "TriggerRecovered" in [e.reason for e in decision.events]


def test_the_next_number_skips_past_every_owned_job() -> None:
    jobs = (job("pol-7", 7, "Failed"), job("pol-3", 3, "Succeeded"), job("pol-9", 9, "Succeeded", owned=False))
    status = RetrainPolicyStatus.model_validate({"lastTrigger": {**LAST, "number": 5}})
    assert r.next_number(status, jobs) == 8


@pytest.mark.parametrize(("name", "limits", "jobs", "deleted"), [
    ("within limits", {}, (job("pol-1", 1, "Succeeded"), job("pol-2", 2, "Failed")), []),
    ("oldest successes beyond the limit", {"successfulJobsHistoryLimit": 2},
     tuple(job(f"pol-{n}", n, "Succeeded") for n in (1, 2, 3, 4)), ["pol-1", "pol-2"]),
    ("numbers order, not names", {"successfulJobsHistoryLimit": 1},
     (job("pol-10", 10, "Succeeded"), job("pol-9", 9, "Succeeded")), ["pol-9"]),
    ("failures have their own limit", {"failedJobsHistoryLimit": 0},
     (job("pol-1", 1, "Failed"), job("pol-2", 2, "Succeeded")), ["pol-1"]),
    ("active jobs are never deleted", {"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0},
     (job("pol-1", 1, "Training"), job("pol-2", 2, None)), []),
    ("jobs it does not own are never deleted", {"failedJobsHistoryLimit": 0},
     (job("pol-1", 1, "Failed", owned=False),), []),
])
def test_history_limits(name: str, limits: dict[str, int], jobs: tuple[r.ObservedJob, ...],
                        deleted: list[str]) -> None:
    decision = run(spec(**limits), {"lastTrigger": {**LAST, "number": 10}}, jobs=jobs)
    assert [a.name for a in decision.actions if isinstance(a, r.DeleteFineTuneJob)] == deleted, name
    assert all(not isinstance(a, r.CreateFineTuneJob) for a in decision.actions)


def test_last_produced_model_is_the_newest_success_and_survives_history_deletion() -> None:
    jobs = (job("pol-1", 1, "Succeeded", produced_model="tuned-1"),
            job("pol-2", 2, "Succeeded", produced_model="tuned-2"), job("pol-3", 3, "Failed"))
    assert run(status={"lastTrigger": {**LAST, "number": 3}}, jobs=jobs).status["lastProducedModel"] == \
        {"name": "tuned-2"}
    kept = run(status={"lastTrigger": {**LAST, "number": 3}, "lastProducedModel": {"name": "tuned-2"}})
    assert kept.status["lastProducedModel"] == {"name": "tuned-2"}


def test_blocked_event_is_posted_once_per_reason() -> None:
    first = run(status={"lastTrigger": LAST}, segments=HOUR_A1, jobs=(job("pol-1", 1, "Training"),))
    assert [e.reason for e in first.events] == ["TriggerBlocked"]
    assert "Forbid" in first.status["message"] and "'pol-1' is still Training" in first.status["message"]
    again = run(status=first.status, segments=HOUR_A1, jobs=(job("pol-1", 1, "Training"),))
    assert again.events == ()


@pytest.mark.parametrize(("name", "status", "generation", "later_s", "expected"), [
    ("never checked", {}, 2, 0, True),
    ("checked just now", {"observedGeneration": 2, "newData": {"checkedAt": CUTOFF}}, 2, 5, False),
    ("interval passed", {"observedGeneration": 2, "newData": {"checkedAt": CUTOFF}}, 2, 300, True),
    ("spec changed", {"observedGeneration": 1, "newData": {"checkedAt": CUTOFF}}, 2, 5, True),
])
def test_due(name: str, status: dict[str, Any], generation: int, later_s: float, expected: bool) -> None:
    now = NOW + timedelta(seconds=later_s)
    assert r.due(spec(), RetrainPolicyStatus.model_validate(status), generation, now) is expected, name


def test_decisions_do_not_mutate_their_inputs() -> None:
    status = RetrainPolicyStatus.model_validate({"lastTrigger": LAST})
    before = status.model_dump()
    obs = observation(segments=HOUR_A1)
    r.decide(spec(), status, obs, NOW)
    assert status.model_dump() == before and obs == replace(obs)
