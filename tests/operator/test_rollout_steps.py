"""Table tests for single Rollout transitions: (status, observation) → phase, actions, weights, step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from senseops_operator.decide import rollout_steps as rs
from senseops_operator.decide.analysis import MetricResult
from senseops_operator.models.rollout import RolloutStatus
from tests.operator.rollout_sim import T0, spec

SPEC = spec()  # steps: setWeight 5, pause 30 s, setWeight 50, analysis, setWeight 100; stable has 4 replicas
BASE = {"stableModel": "v1", "candidateModel": "v2", "currentStepIndex": 0, "stepStartedAt": "2026-11-29T07:00:00Z",
        "startedAt": "2026-11-29T07:00:00Z", "desiredWeight": 0, "actualWeight": 0}
READY = {"v1": "Ready", "v2": "Ready", "v3": "Ready"}
OK = MetricResult("error-ratio", "q", value=0.0)
BAD = MetricResult("error-ratio", "q", value=0.5)
NAN = MetricResult("error-ratio", "q", value=float("nan"))
DOWN = MetricResult("error-ratio", "q", error="connection refused")


@dataclass(frozen=True)
class Case:
    name: str
    status: dict[str, Any]
    ready: int = 1
    router: int | None = 0
    at: float = 1.0  # seconds after the step started
    results: tuple[MetricResult, ...] = ()
    annotation: str | None = None
    serving: str | None = "v1"
    phases: dict[str, str | None] = field(default_factory=lambda: READY)
    spec_changes: dict[str, Any] = field(default_factory=dict)
    target_missing: str | None = None
    stable_template: str | None = None
    # expected
    phase: str = "Progressing"
    actions: tuple[rs.Action, ...] = ()
    step: int | None = None  # None: unchanged
    desired: int | None = None
    pauses: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    event: str | None = None


def st(**kw: Any) -> dict[str, Any]:
    return {**BASE, **kw}


CASES = [
    Case("fresh object starts at step 1 and creates the candidate", {}, ready=0,
         actions=(rs.ScaleCandidate("v2", 1),), step=0, desired=0, pauses=("CandidateNotReady",),
         event="RolloutStarted"),
    Case("models not ready: pending, nothing created", {}, phases={"v1": "Ready", "v2": None},
         phase="Pending", step=0, desired=0),
    Case("target Deployment missing: pending, nothing written", {}, router=None, phase="Pending", step=0, desired=0,
         target_missing="target Deployment asr not found"),
    Case("no ready candidate pods: weight stays 0", st(), ready=0,
         actions=(rs.ScaleCandidate("v2", 1),), desired=0, pauses=("CandidateNotReady",)),
    Case("crashed candidate mid-rollout: traffic taken away", st(currentStepIndex=2, desiredWeight=50,
         actualWeight=50), ready=0, router=50, actions=(rs.ScaleCandidate("v2", 2), rs.SetWeight(0)), desired=0,
         pauses=("CandidateNotReady",)),
    Case("ready candidate: ask the router for the step weight", st(), ready=1,
         actions=(rs.ScaleCandidate("v2", 1), rs.SetWeight(5)), desired=5),
    Case("router confirms: step completes", st(desiredWeight=5), router=5, step=1, desired=5,
         actions=(rs.ScaleCandidate("v2", 1),), event="StepCompleted"),
    Case("router does not confirm yet: wait, same step", st(desiredWeight=5), router=0,
         actions=(rs.ScaleCandidate("v2", 1), rs.SetWeight(5)), step=0, desired=5),
    Case("router unreadable: wait", st(desiredWeight=5), router=None,
         actions=(rs.ScaleCandidate("v2", 1), rs.SetWeight(5)), step=0, desired=5),
    Case("not enough candidate pods for 50%: scale first, keep 5%",
         st(currentStepIndex=2, desiredWeight=5, actualWeight=5), ready=1, router=5,
         actions=(rs.ScaleCandidate("v2", 2),), step=2, desired=5),
    Case("enough pods for 50%: raise", st(currentStepIndex=2, desiredWeight=5, actualWeight=5), ready=2, router=5,
         actions=(rs.ScaleCandidate("v2", 2), rs.SetWeight(50)), desired=50),
    Case("progress deadline passes: Degraded with the reason", st(), ready=0, at=121, phase="Degraded",
         actions=(rs.ScaleCandidate("v2", 1),), desired=0, pauses=("CandidateNotReady",),
         event="ProgressDeadlineExceeded"),
    Case("timed pause not over: hold", st(currentStepIndex=1, desiredWeight=5), router=5, at=29,
         actions=(rs.ScaleCandidate("v2", 1),), step=1, desired=5),
    Case("timed pause over: advance", st(currentStepIndex=1, desiredWeight=5), router=5, at=30,
         actions=(rs.ScaleCandidate("v2", 1),), step=2, desired=5, event="StepCompleted"),
    Case("indefinite pause: Paused by step", st(currentStepIndex=1, desiredWeight=5), router=5, at=9999,
         spec_changes={"steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 100}]}, phase="Paused",
         actions=(rs.ScaleCandidate("v2", 1),), step=1, desired=5, pauses=("PausedByStep",)),
    Case("promote via annotation skips an indefinite pause",
         st(currentStepIndex=1, desiredWeight=5, pauseConditions=[{"reason": "PausedByStep"}]), router=5,
         annotation="promote", spec_changes={"steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 100}]},
         actions=(rs.ClearVerbAnnotation(), rs.ScaleCandidate("v2", 1)), step=2, desired=5),
    Case("promote via status flag skips a timed pause", st(currentStepIndex=1, desiredWeight=5, promote=True),
         router=5, actions=(rs.ScaleCandidate("v2", 1),), step=2, desired=5, extra={"promote": False}),
    Case("unknown annotation verb is cleared and ignored", st(desiredWeight=5), router=5, annotation="jump",
         actions=(rs.ClearVerbAnnotation(), rs.ScaleCandidate("v2", 1)), step=1, desired=5),
    Case("analysis step waits for a passing measurement", st(currentStepIndex=3, desiredWeight=50),
         router=50, ready=2, actions=(rs.ScaleCandidate("v2", 2),), step=3, desired=50),
    Case("analysis step passes on a successful measurement", st(currentStepIndex=3, desiredWeight=50),
         router=50, ready=2, results=(OK,), actions=(rs.ScaleCandidate("v2", 2),), step=4, desired=50,
         event="AnalysisSuccessful"),
    Case("failed measurement aborts: weight 0 first, no scale-down yet", st(currentStepIndex=3, desiredWeight=50),
         router=50, ready=2, results=(BAD,), phase="Aborted", actions=(rs.SetWeight(0),), desired=0,
         extra={"abort": True, "outcome": None}, event="AnalysisAbort"),
    Case("inconclusive pauses with the reason", st(currentStepIndex=3, desiredWeight=50), router=50, ready=2,
         results=(NAN,), phase="Paused", actions=(rs.ScaleCandidate("v2", 2),), step=3, desired=50,
         pauses=("Inconclusive",)),
    Case("one provider error: no advance, not paused", st(currentStepIndex=1, desiredWeight=5), router=5, at=31,
         results=(DOWN,), actions=(rs.ScaleCandidate("v2", 1),), step=1, desired=5),
    Case("a provider error while a raise is in flight holds at the confirmed weight (route not yet accepted)",
         st(currentStepIndex=2, desiredWeight=50, actualWeight=5), router=None, ready=2, results=(DOWN,),
         actions=(rs.ScaleCandidate("v2", 2), rs.SetWeight(5)), step=2, desired=5),
    Case("a manual pause while a raise is in flight holds at the confirmed weight",
         st(currentStepIndex=2, desiredWeight=50, actualWeight=5, pause=True), router=5, ready=2,
         phase="Paused", actions=(rs.ScaleCandidate("v2", 2),), step=2, desired=5, pauses=("Manual",)),
    Case("provider errors beyond the limit pause", st(currentStepIndex=1, desiredWeight=5, tallies=[
         {"metric": "error-ratio", "error": 4, "consecutiveErrors": 4}]), router=5, results=(DOWN,),
         phase="Paused", actions=(rs.ScaleCandidate("v2", 1),), step=1, desired=5, pauses=("ProviderErrors",)),
    Case("provider answers again: ProviderErrors pause lifts", st(currentStepIndex=1, desiredWeight=5, tallies=[
         {"metric": "error-ratio", "error": 5, "consecutiveErrors": 5}], pauseConditions=[
         {"reason": "ProviderErrors"}]), router=5, results=(OK,), actions=(rs.ScaleCandidate("v2", 1),),
         step=1, desired=5, event="Resumed"),
    Case("manual pause holds", st(currentStepIndex=1, desiredWeight=5, pause=True), router=5, at=31,
         phase="Paused", actions=(rs.ScaleCandidate("v2", 1),), step=1, desired=5, pauses=("Manual",)),
    Case("resume clears manual and inconclusive pauses", st(currentStepIndex=1, desiredWeight=5, resume=True,
         pauseConditions=[{"reason": "Manual"}, {"reason": "Inconclusive"}]), router=5, at=31,
         actions=(rs.ScaleCandidate("v2", 1),), step=2, desired=5),
    Case("abort flag from the CLI: weight 0", st(currentStepIndex=2, desiredWeight=50, abort=True), router=50,
         ready=2, phase="Aborted", actions=(rs.SetWeight(0),), desired=0, extra={"abortReason": "aborted by hand"},
         event="AbortRequested"),
    Case("aborted mid-promotion after stable moved: stable moves back before traffic leaves the candidate",
         st(currentStepIndex=5, desiredWeight=100, abort=True), router=100, ready=4, serving=None,
         stable_template="v2", phase="Aborted", actions=(rs.MoveStable("v1"),), desired=100),
    Case("aborted and stable back on v1: weight 0", st(currentStepIndex=5, desiredWeight=100, abort=True),
         router=100, ready=4, serving="v1", stable_template="v1", phase="Aborted", actions=(rs.SetWeight(0),),
         desired=0),
    Case("aborted and router at 0: rolled back, scale-down scheduled", st(abort=True, abortReason="x"), router=0,
         phase="Aborted", desired=0, extra={"outcome": "RolledBack", "scaleDownAt": "2026-11-29T07:00:31Z"},
         event="RolledBack"),
    Case("aborted, delay not over: candidate kept", st(abort=True, abortReason="x", outcome="RolledBack",
         abortedAt="2026-11-29T07:00:00Z", scaleDownAt="2026-11-29T07:00:30Z"), at=29, phase="Aborted", desired=0),
    Case("aborted, delay over: candidate scaled down", st(abort=True, abortReason="x", outcome="RolledBack",
         abortedAt="2026-11-29T07:00:00Z", scaleDownAt="2026-11-29T07:00:30Z"), at=30, phase="Aborted",
         actions=(rs.ScaleCandidate("v2", 0),), desired=0),
    Case("retry after abort: step 1, clean analysis", st(currentStepIndex=3, abort=True, abortReason="x",
         outcome="RolledBack", retry=True, measurements=[{"metric": "error-ratio", "phase": "Failed"}],
         tallies=[{"metric": "error-ratio", "failed": 1}]), ready=1,
         actions=(rs.ScaleCandidate("v2", 1), rs.SetWeight(5)), step=0, desired=5,
         extra={"abort": False, "outcome": None, "measurements": [], "tallies": []}),
    Case("promotion: candidate grows to full size first", st(currentStepIndex=5, desiredWeight=100), router=100,
         ready=1, actions=(rs.ScaleCandidate("v2", 4),), desired=100),
    Case("promotion: full candidate at 100%: stable moves", st(currentStepIndex=5, desiredWeight=100),
         router=100, ready=4, actions=(rs.ScaleCandidate("v2", 4), rs.MoveStable("v2")), desired=100),
    Case("promotion: stable rolling (mixed): keep asking", st(currentStepIndex=5, desiredWeight=100),
         router=100, ready=4, serving=None, actions=(rs.ScaleCandidate("v2", 4), rs.MoveStable("v2")), desired=100),
    Case("promotion: stable serves v2: traffic back to stable", st(currentStepIndex=5, desiredWeight=100),
         router=100, ready=4, serving="v2", actions=(rs.SetWeight(0),), desired=0),
    Case("promotion done when the router confirms 0", st(currentStepIndex=5, desiredWeight=0), router=0,
         ready=4, serving="v2", phase="Healthy", desired=0, event="Promoted",
         extra={"outcome": "Promoted", "stableModel": "v2", "previousStableModel": "v1"}),
    Case("promote --full jumps to promotion", st(currentStepIndex=0, desiredWeight=5, promoteFull=True),
         router=5, ready=1, actions=(rs.ScaleCandidate("v2", 4),), step=5, desired=5, event="PromotedFull"),
    Case("new candidate while v2 has traffic: drain first, verbs wait",
         st(currentStepIndex=2, desiredWeight=50, promote=True), router=50, ready=2,
         spec_changes={"candidateModel": {"name": "v3"}}, actions=(rs.SetWeight(0),), step=2, desired=0,
         extra={"candidateModel": "v2"}),
    Case("new candidate once drained: restart from step 1", st(currentStepIndex=2, desiredWeight=0), router=0,
         ready=0, spec_changes={"candidateModel": {"name": "v3"}}, actions=(rs.ScaleCandidate("v3", 1),), step=0,
         desired=0, pauses=("CandidateNotReady",), extra={"candidateModel": "v3"}, event="RolloutStarted"),
    Case("new candidate after promotion: from the promoted stable", st(currentStepIndex=5, outcome="Promoted",
         stableModel="v2", previousStableModel="v1"), router=0, ready=0, serving="v2",
         spec_changes={"candidateModel": {"name": "v3"}}, actions=(rs.ScaleCandidate("v3", 1),), step=0,
         desired=0, pauses=("CandidateNotReady",), extra={"stableModel": "v2", "outcome": None}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transition(case: Case) -> None:
    s = spec(**case.spec_changes) if case.spec_changes else SPEC
    status = RolloutStatus.model_validate(case.status)
    obs = rs.RolloutObservation(
        generation=1, model_phases=case.phases, stable_replicas=4, candidate_ready_replicas=case.ready,
        router_weight=case.router, stable_serving_model=case.serving, results=case.results,
        annotation_verb=case.annotation, target_missing=case.target_missing,
        stable_template_model=case.stable_template,
    )
    d = rs.decide(s, status, obs, T0 + timedelta(seconds=case.at))
    assert d.status.phase == case.phase, d.status.message
    assert d.actions == case.actions
    expected_step = case.status.get("currentStepIndex", 0) if case.step is None else case.step
    assert d.status.current_step_index == expected_step
    if case.desired is not None:
        assert d.status.desired_weight == case.desired
    assert tuple(p.reason for p in d.status.pause_conditions) == case.pauses
    wire = d.status.model_dump(by_alias=True, mode="json")
    for key, value in case.extra.items():
        assert wire[key] == value, key
    if case.event is not None:
        assert case.event in [e.reason for e in d.events]
    assert d.requeue_after is None or d.requeue_after >= rs.ADVANCE_SECONDS


def test_conditions_say_whether_models_resolved() -> None:
    obs = rs.RolloutObservation(1, {"v1": "Ready", "v2": None}, 4, 0, 0)
    d = rs.decide(SPEC, RolloutStatus(), obs, T0)
    by_type = {c.type: c for c in d.status.conditions}
    assert (by_type["ModelsResolved"].status, by_type["ModelsResolved"].reason) == ("False", "ModelNotFound")
    assert by_type["Accepted"].status == "True" and d.status.actual_weight == 0
    assert "candidate ASRModel v2 not found" in (d.status.message or "")


@pytest.mark.parametrize(
    ("stable", "weight", "replicas"),
    [(4, 0, 1), (4, 5, 1), (4, 25, 1), (4, 26, 2), (4, 50, 2), (4, 100, 4), (10, 5, 1), (10, 55, 6), (0, 50, 1)],
)
def test_canary_replicas(stable: int, weight: int, replicas: int) -> None:
    assert rs.canary_replicas(stable, weight) == replicas


def test_patch_leaves_verbs_nobody_acted_on_out() -> None:
    status = RolloutStatus.model_validate(st(desiredWeight=5))
    obs = rs.RolloutObservation(1, READY, 4, 1, 5)
    patch = rs.decide(SPEC, status, obs, T0).status_patch
    assert not {"promote", "promoteFull", "retry", "pause", "resume", "abort"} & set(patch)
    consumed = rs.decide(SPEC, RolloutStatus.model_validate(st(promote=True)), obs, T0).status_patch
    assert consumed["promote"] is False


def test_status_message_and_events_say_why_it_aborted() -> None:
    status = RolloutStatus.model_validate(st(currentStepIndex=3, desiredWeight=50))
    bad = MetricResult("error-ratio", 'sum(rate(errors{version="v2"}[1m]))', value=0.5)
    obs = rs.RolloutObservation(1, READY, 4, 2, 50, results=(bad,))
    d = rs.decide(SPEC, status, obs, T0)
    for text in (d.status.message or "", d.status.abort_reason or ""):
        assert "error-ratio" in text and "0.5" in text and "<= 0.05" in text and 'version="v2"' in text
    assert any(e.reason == "AnalysisFailed" and 'version="v2"' in e.message for e in d.events)


@pytest.mark.parametrize(
    ("name", "annotation", "flags", "verbs"),
    [("nothing", None, {}, set()), ("annotation", "promote-full", {}, {"promote-full"}),
     ("flags", None, {"promote": True, "retry": True}, {"promote", "retry"}),
     ("annotation with spaces", " abort ", {}, {"abort"}), ("unknown annotation", "delete", {}, set())],
)
def test_requested_verbs(name: str, annotation: str | None, flags: dict[str, bool], verbs: set[str]) -> None:
    assert rs.requested_verbs(RolloutStatus(**flags), annotation) == verbs  # type: ignore[arg-type]


def test_analysis_step_waits_for_the_initial_delay_before_measuring() -> None:
    # At 50 % (step 3, analysis) with a 45 s initial delay: nothing is measured 20 s into the step, the
    # operator wakes when the delay ends, and the metric is due from then on.
    metrics = [{"name": "error-ratio", "successMax": 0.05, "intervalSeconds": 10, "initialDelaySeconds": 45,
                "provider": {"prometheus": {"address": "http://prom:9090", "query": "q"}}}]
    s = spec(analysis={"metrics": metrics})
    status = RolloutStatus.model_validate(st(currentStepIndex=3, desiredWeight=50, actualWeight=50))
    assert rs.metrics_due(s, status, T0 + timedelta(seconds=20)) == []
    assert [m.name for m in rs.metrics_due(s, status, T0 + timedelta(seconds=45))] == ["error-ratio"]
    obs = rs.RolloutObservation(
        generation=1, model_phases=READY, stable_replicas=4, candidate_ready_replicas=2, router_weight=50,
        stable_serving_model="v1", results=(),
    )
    d = rs.decide(s, status, obs, T0 + timedelta(seconds=20))
    assert d.status.current_step_index == 3 and d.status.phase == "Progressing"
    assert d.requeue_after == pytest.approx(25.0)
    # Without the delay the same metric is due at once.
    assert [m.name for m in rs.metrics_due(SPEC, status, T0 + timedelta(seconds=20))] == ["error-ratio"]
