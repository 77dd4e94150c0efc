"""Table tests for a RetrainPolicy's releases (spec.release): each produced model is rolled out from what serves
now, one release at a time — the step that closes the loop (record → retrain → release)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from senseops_operator.decide import retrainpolicy as r
from senseops_operator.models import FineTuneJobSpec, RetrainPolicySpec, RetrainPolicyStatus, RolloutSpec
from tests.operator.test_retrainpolicy_decide import WIRE, job, segs

NOW = datetime(2026, 11, 29, 9, 0, 0, tzinfo=UTC)
RELEASE: dict[str, Any] = {
    "metadata": {"labels": {"team": "asr"}},
    "spec": {"target": {"deployment": "asr", "service": "asr", "port": 80},
             "steps": [{"setWeight": 5}, {"pause": {"durationSeconds": 30}}, {"setWeight": 50}, {"setWeight": 100}],
             "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}}},
}


def policy(release: dict[str, Any] | None = RELEASE) -> RetrainPolicySpec:
    return RetrainPolicySpec.model_validate({**WIRE, **({"release": release} if release else {})})


def rollout(number: int, phase: str | None, stable: str, candidate: str, serving: str | None = None,
            owned: bool = True) -> r.ObservedRollout:
    return r.ObservedRollout(name=f"pol-{number}", owned=owned, number=number, phase=phase,
                             stable_model=serving, spec_stable=stable, candidate=candidate)


DONE_1 = job("pol-1", 1, "Succeeded", produced_model="tuned-1")
DONE_2 = job("pol-2", 2, "Succeeded", produced_model="tuned-2")
RUNNING_3 = job("pol-3", 3, "Training")


@pytest.mark.parametrize(("name", "spec", "status", "jobs", "rollouts", "want"), [
    ("no release template: publish only", policy(None), {}, (DONE_1,), (), None),
    ("first release starts from the base model", policy(), {}, (DONE_1,), (), ("pol-1", "base", "tuned-1")),
    ("the template may name what serves before the first release",
     policy({**RELEASE, "stableModel": {"name": "prod-v7"}}), {}, (DONE_1,), (), ("pol-1", "prod-v7", "tuned-1")),
    ("nothing succeeded yet", policy(), {}, (RUNNING_3,), (), None),
    ("already released", policy(), {}, (DONE_1,), (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"),), None),
    ("one release at a time: an unfinished one holds the next", policy(), {}, (DONE_1, DONE_2),
     (rollout(1, "Progressing", "base", "tuned-1", "base"),), None),
    ("a Degraded release waits for a person", policy(), {}, (DONE_1, DONE_2),
     (rollout(1, "Degraded", "base", "tuned-1", "base"),), None),
    ("a just-created release (no phase yet) holds the next", policy(), {}, (DONE_1, DONE_2),
     (rollout(1, None, "base", "tuned-1"),), None),
    ("after a promotion the next release starts from the promoted model", policy(), {}, (DONE_1, DONE_2),
     (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"),), ("pol-2", "tuned-1", "tuned-2")),
    ("after a rollback the next release starts from the stable that stayed", policy(), {}, (DONE_1, DONE_2),
     (rollout(1, "Aborted", "base", "tuned-1", "base"),), ("pol-2", "base", "tuned-2")),
    ("an older unreleased model is skipped for a newer one", policy(), {}, (DONE_1, DONE_2), (),
     ("pol-2", "base", "tuned-2")),
    ("never a model onto itself", policy({**RELEASE, "stableModel": {"name": "tuned-1"}}), {}, (DONE_1,), (), None),
    ("a job of someone else is not released", policy(), {},
     (job("pol-1", 1, "Succeeded", owned=False, produced_model="x"),), (), None),
    ("status remembers what serves when old rollouts are gone", policy(), {"servingModel": "tuned-5"},
     (job("pol-6", 6, "Succeeded", produced_model="tuned-6"),), (), ("pol-6", "tuned-5", "tuned-6")),
])
def test_release_plan(name: str, spec: RetrainPolicySpec, status: dict[str, Any], jobs: tuple[r.ObservedJob, ...],
                      rollouts: tuple[r.ObservedRollout, ...], want: tuple[str, str, str] | None) -> None:
    plan = r.release_plan(spec, RetrainPolicyStatus.model_validate(status), "pol", jobs, rollouts)
    if want is None:
        assert plan is None, name
        return
    assert plan is not None, name
    assert (plan.name, plan.spec["stableModel"]["name"], plan.spec["candidateModel"]["name"]) == want, name
    assert plan.labels[r.LABEL_POLICY] == "pol" and plan.labels["team"] == "asr"
    # What it creates is a valid Rollout spec (the same model the API server's schema is generated from).
    made = RolloutSpec.model_validate(plan.spec)
    assert [s.set_weight for s in made.steps if s.set_weight] == [5, 50, 100]


def test_the_decision_releases_records_and_announces() -> None:
    obs = r.RetrainObservation(generation=1, name="pol", namespace="ns", uid="u", segments=(), jobs=(DONE_1,))
    decision = r.decide(policy(), RetrainPolicyStatus(), obs, NOW)
    created = [a for a in decision.actions if isinstance(a, r.CreateRollout)]
    assert [c.name for c in created] == ["pol-1"]
    assert decision.status["lastRelease"] == {"rollout": "pol-1", "stableModel": "base", "candidateModel": "tuned-1",
                                              "phase": "Pending"}
    assert decision.status["servingModel"] == "base"
    assert any(e.reason == "Released" and "base -> tuned-1" in e.message for e in decision.events)

    promoted = (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"),)
    obs = r.RetrainObservation(generation=1, name="pol", namespace="ns", uid="u", segments=(), jobs=(DONE_1,),
                               rollouts=promoted)
    decision = r.decide(policy(), RetrainPolicyStatus.model_validate(decision.status), obs, NOW)
    assert not [a for a in decision.actions if isinstance(a, r.CreateRollout)]
    assert decision.status["servingModel"] == "tuned-1"
    assert decision.status["lastRelease"]["phase"] == "Healthy"


# --- baseModelFrom: what each trigger fine-tunes ------------------------------------------------------------
def serving_policy(**release_extra: Any) -> RetrainPolicySpec:
    return RetrainPolicySpec.model_validate({**WIRE, "release": {**RELEASE, **release_extra},
                                             "baseModelFrom": "Serving"})


@pytest.mark.parametrize(("name", "spec", "status", "rollouts", "want"), [
    ("Template (the default): always the template's base", policy(), {},
     (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"),), "base"),
    ("Serving, nothing released yet: the template's base", serving_policy(), {}, (), "base"),
    ("Serving, nothing released yet: the release's starting model", serving_policy(stableModel={"name": "prod-v7"}),
     {}, (), "prod-v7"),
    ("Serving after a promotion: the promoted model", serving_policy(), {},
     (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"),), "tuned-1"),
    ("Serving after a rollback: the stable that stayed", serving_policy(), {},
     (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"), rollout(2, "Aborted", "tuned-1", "tuned-2", "tuned-1")),
     "tuned-1"),
    ("Serving during a release: not its candidate (it may still roll back)", serving_policy(), {},
     (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"), rollout(2, "Progressing", "tuned-1", "tuned-2", "tuned-1")),
     "tuned-1"),
    ("Serving when old rollouts are gone: what status remembers", serving_policy(), {"servingModel": "tuned-5"},
     (), "tuned-5"),
])
def test_trigger_base_model(name: str, spec: RetrainPolicySpec, status: dict[str, Any],
                            rollouts: tuple[r.ObservedRollout, ...], want: str) -> None:
    assert r.trigger_base_model(spec, RetrainPolicyStatus.model_validate(status), rollouts) == want, name


def test_serving_base_goes_into_the_job_and_its_audit_record() -> None:
    """A trigger after a promotion fine-tunes the promoted model: the FineTuneJob's spec, its audit record and the
    Triggered event all say so; with the default the same trigger starts from the template's base."""
    hour = segs("a1", 20.0, 180)
    promoted = (rollout(1, "Healthy", "base", "tuned-1", "tuned-1"),)
    status = RetrainPolicyStatus.model_validate({"lastTrigger": {"number": 1, "time": "2026-11-20T00:00:00Z",
                                                                 "cutoff": "2026-11-20T00:00:00Z",
                                                                 "fineTuneJob": "pol-1"}})
    obs = r.RetrainObservation(generation=1, name="pol", namespace="ns", uid="u", segments=hour, jobs=(DONE_1,),
                               rollouts=promoted)
    for spec, want in ((serving_policy(), "tuned-1"), (policy(), "base")):
        decision = r.decide(spec, status, obs, NOW)
        create = next(a for a in decision.actions if isinstance(a, r.CreateFineTuneJob))
        audit = next(a for a in decision.actions if isinstance(a, r.WriteAudit))
        assert create.name == "pol-2" and FineTuneJobSpec.model_validate(create.spec).base_model.name == want
        assert audit.record["baseModel"] == want
        assert any(e.reason == "Triggered" and f"fine-tunes {want}" in e.message for e in decision.events)


def test_a_recovered_trigger_audits_the_base_its_job_really_has() -> None:
    """The status write after a create was lost, and by the next look a release finished and moved what serves.
    The re-written audit record names the base the job was created with, not what serves now."""
    lost = job("pol-2", 2, "Pending", base_model="base", trigger_time="2026-11-29T08:00:00Z",
               cutoff="2026-11-29T08:00:00Z")
    obs = r.RetrainObservation(generation=1, name="pol", namespace="ns", uid="u", segments=(), jobs=(DONE_1, lost),
                               rollouts=(rollout(1, "Healthy", "base", "tuned-1", "tuned-1"),))
    status = RetrainPolicyStatus.model_validate({"lastTrigger": {
        "number": 1, "time": "2026-11-20T00:00:00Z", "cutoff": "2026-11-20T00:00:00Z", "fineTuneJob": "pol-1"}})
    spec = serving_policy()
    assert r.trigger_base_model(spec, status, obs.rollouts) == "tuned-1"  # what a new trigger would take now
    decision = r.decide(spec, status, obs, NOW)
    audit = next(a for a in decision.actions if isinstance(a, r.WriteAudit))
    assert audit.record["fineTuneJob"] == "pol-2" and audit.record["baseModel"] == "base"
