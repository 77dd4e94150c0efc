"""The golden-set quality gate (pure): scores, verdicts, when the probe is due, and what the step machine does
with it — no traffic before it passes, abort with QualityGateFailed, pause when it cannot measure."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from senseops_operator.decide import quality_gate as qg
from senseops_operator.decide import rollout_steps as rs
from senseops_operator.models.rollout import QualityGate, RolloutStatus
from tests.operator.rollout_sim import T0, World, spec

GATE: dict[str, Any] = {"goldenSet": {"uri": "s3://golden/set/"}, "metric": "cer", "maxDegradation": 0.02,
                        "intervalSeconds": 60, "inconclusiveLimit": 1}
GATE_MODEL = QualityGate.model_validate(GATE)
GOOD = qg.ProbeResult("s3://golden/set/manifest.jsonl", clips=5, candidate=0.05, stable=0.04)
WORSE = qg.ProbeResult("s3://golden/set/manifest.jsonl", clips=5, candidate=0.62, stable=0.04)
BROKEN = qg.ProbeResult("s3://golden/set/manifest.jsonl", error="candidate Service ro-canary has no ready endpoints")


@pytest.mark.parametrize(("name", "refs", "hyps", "metric", "rate"), [
    ("identical Chinese", ["今天天气很好"], ["今天天气很好"], "cer", 0.0),
    ("one character wrong of six", ["今天天气很好"], ["今天天气很坏"], "cer", 1 / 6),
    ("CER on English counts letters", ["hello world"], ["hello word"], "cer", 1 / 10),
    ("WER on English counts words", ["hello world"], ["hello word"], "wer", 1 / 2),
    ("case and punctuation are normalised away", ["Hello, World!"], ["hello world"], "wer", 0.0),
    ("traditional folds to simplified", ["今天天气很好"], ["今天天氣很好"], "cer", 0.0),
    ("empty hypothesis: every reference unit deleted", ["今天"], [""], "cer", 1.0),
    ("rates pool over the set", ["今天", "天气很好"], ["今天", "天气很坏"], "cer", 1 / 6),
])
def test_score(name: str, refs: list[str], hyps: list[str], metric: qg.Metric, rate: float) -> None:
    assert qg.score(refs, hyps, metric) == pytest.approx(rate)


@pytest.mark.parametrize(("name", "result", "phase", "value", "words"), [
    ("within the margin passes", GOOD, "Successful", 0.05, ["0.0500", "0.0400", "within"]),
    ("exactly stable + margin passes", qg.ProbeResult("g", 2, 0.12, 0.10), "Successful", 0.12, ["0.1200"]),
    ("worse beyond the margin fails, with both numbers", WORSE, "Failed", 0.62,
     ["candidate CER 0.6200", "stable CER 0.0400", "worse than"]),
    ("better than stable passes", qg.ProbeResult("g", 2, 0.0, 0.3), "Successful", 0.0, []),
    ("probe error is inconclusive, never a pass", BROKEN, "Inconclusive", None, ["no ready endpoints"]),
    ("a missing side is inconclusive", qg.ProbeResult("g", 2, 0.1, None), "Inconclusive", None, ["no score"]),
])
def test_judge(name: str, result: qg.ProbeResult, phase: str, value: float | None, words: list[str]) -> None:
    m = qg.judge(GATE_MODEL, result, T0)
    assert (m.metric, m.phase, m.value) == (qg.GATE_METRIC, phase, value)
    for word in words:
        assert word in (m.message or ""), m.message
    assert "golden set" in (m.resolved_query or "") and m.threshold is not None and "+ 0.02" in m.threshold


@pytest.mark.parametrize(("name", "counts", "verdict"), [
    ("nothing yet", {}, "Healthy"),
    ("one failure with failureLimit 0 aborts", {"failed": 1}, "Abort"),
    ("inconclusive within the limit", {"inconclusive": 1}, "Healthy"),
    ("inconclusive beyond the limit pauses", {"inconclusive": 2}, "Inconclusive"),
    ("a failure outranks inconclusive", {"failed": 1, "inconclusive": 5}, "Abort"),
])
def test_verdict(name: str, counts: dict[str, int], verdict: str) -> None:
    tally = {"metric": qg.GATE_METRIC, **counts}
    assert qg.verdict(GATE_MODEL, RolloutStatus.model_validate({"tallies": [tally]}).tallies[0]) == verdict


def _status(phase: str | None, at: float, **counts: int) -> RolloutStatus:
    if phase is None:
        return RolloutStatus()
    when = (T0 + timedelta(seconds=at)).isoformat().replace("+00:00", "Z")
    return RolloutStatus.model_validate({
        "measurements": [{"metric": qg.GATE_METRIC, "phase": phase, "at": when}],
        "tallies": [{"metric": qg.GATE_METRIC, "lastMeasuredAt": when, **counts}]})


@pytest.mark.parametrize(("name", "status", "now", "ready", "due"), [
    ("never probed, candidate ready: due", _status(None, 0), 0, True, True),
    ("never probed, no ready candidate pod: not yet", _status(None, 0), 0, False, False),
    ("passed 30 s ago, interval 60: not due", _status("Successful", 0, successful=1), 30, True, False),
    ("passed 60 s ago: due again", _status("Successful", 0, successful=1), 60, True, True),
    ("inconclusive 10 s ago, within the limit: retried soon", _status("Inconclusive", 0, inconclusive=1), 10, True,
     True),
    ("inconclusive beyond the limit: back to the interval", _status("Inconclusive", 0, inconclusive=2), 10, True,
     False),
    ("aborted: never", RolloutStatus(abort=True), 0, True, False),
    ("promoted: never", RolloutStatus(outcome="Promoted"), 0, True, False),
])
def test_is_due(name: str, status: RolloutStatus, now: float, ready: bool, due: bool) -> None:
    assert qg.is_due(GATE_MODEL, status, T0 + timedelta(seconds=now), ready) is due


def test_no_gate_is_never_due_and_always_open() -> None:
    assert not qg.is_due(None, RolloutStatus(), T0, True)
    assert qg.passed(None, RolloutStatus())


# ---- the step machine with a gate --------------------------------------------------------------------------

SPEC = spec(qualityGate=GATE)
BASE = {"stableModel": "v1", "candidateModel": "v2", "currentStepIndex": 0, "stepStartedAt": "2026-11-29T07:00:00Z",
        "startedAt": "2026-11-29T07:00:00Z", "desiredWeight": 0, "actualWeight": 0}
PASSED = {"tallies": [{"metric": qg.GATE_METRIC, "successful": 1, "lastMeasuredAt": "2026-11-29T07:00:00Z"}]}


@dataclass(frozen=True)
class Case:
    name: str
    status: dict[str, Any]
    quality: qg.ProbeResult | None
    router: int = 0
    # expected
    phase: str = "Progressing"
    weights: tuple[int, ...] = ()  # SetWeight actions
    abort_reason: str | None = None
    pauses: tuple[str, ...] = ()
    event: str | None = None


CASES = [
    Case("gate not measured yet: weight stays 0", BASE, None),
    Case("gate passes: the first weight is asked for in the same reconcile", BASE, GOOD, weights=(5,),
         event="AnalysisSuccessful"),
    Case("gate fails: aborted before any traffic, both numbers in the reason", BASE, WORSE, phase="Aborted",
         abort_reason="QualityGateFailed: candidate CER 0.6200 vs stable CER 0.0400", event="QualityGateFailed"),
    Case("probe error within the limit: weight stays 0, no pause", BASE, BROKEN, event="AnalysisInconclusive"),
    Case("probe errors beyond the limit: paused Inconclusive", {**BASE, "tallies": [
        {"metric": qg.GATE_METRIC, "inconclusive": 1, "lastMeasuredAt": "2026-11-29T07:00:00Z"}]}, BROKEN,
         phase="Paused", pauses=("Inconclusive",)),
    Case("gate passed earlier: steps go on without a new probe", {**BASE, **PASSED}, None, weights=(5,)),
    Case("repeat probe fails mid-rollout: abort, weight back to 0",
         {**BASE, **PASSED, "currentStepIndex": 1, "desiredWeight": 5, "actualWeight": 5}, WORSE, router=5,
         phase="Aborted", weights=(0,), abort_reason="QualityGateFailed", event="QualityGateFailed"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_step_machine_with_gate(case: Case) -> None:
    obs = rs.RolloutObservation(generation=1, model_phases={"v1": "Ready", "v2": "Ready"}, stable_replicas=4,
                                candidate_ready_replicas=1, router_weight=case.router, stable_serving_model="v1",
                                quality=case.quality)
    d = rs.decide(SPEC, RolloutStatus.model_validate(case.status), obs, T0 + timedelta(seconds=1))
    assert d.status.phase == case.phase, d.status.message
    assert tuple(a.weight for a in d.actions if isinstance(a, rs.SetWeight)) == case.weights
    if case.abort_reason is None:
        assert d.status.abort_reason is None
    else:
        assert (d.status.abort_reason or "").startswith(case.abort_reason), d.status.abort_reason
    assert tuple(p.reason for p in d.status.pause_conditions) == case.pauses
    if case.event is not None:
        assert case.event in [e.reason for e in d.events], d.events
    if case.quality is not None:
        assert d.status.measurements[-1].metric == qg.GATE_METRIC


# ---- whole rollouts on the simulated clock -----------------------------------------------------------------


def test_good_candidate_passes_the_gate_then_repeats_on_schedule() -> None:
    calls: list[float] = []

    def probe(t: float, weight: int) -> qg.ProbeResult:
        calls.append(t)
        return GOOD

    world = World(spec(qualityGate=GATE), quality_probe=probe)
    world.run(600, verbs={})
    assert world.status.outcome == "Promoted", world.status.message
    assert calls and world.weights[0][0] >= calls[0]  # the first probe came before the first weight
    assert len(calls) >= 2 and all(b - a >= 60 for a, b in itertools.pairwise(calls))


def test_worse_candidate_never_gets_traffic() -> None:
    world = World(spec(qualityGate=GATE), quality_probe=lambda t, w: WORSE)
    world.run(600)
    assert world.status.phase == "Aborted" and world.status.outcome == "RolledBack"
    assert all(w == 0 for _, w in world.weights)  # no weight above 0 was ever confirmed
    assert "QualityGateFailed" in world.reasons()


def test_unreachable_candidate_pauses_then_resume_and_recovery_lets_it_through() -> None:
    answers = {"ok": False}

    def probe(t: float, weight: int) -> qg.ProbeResult:
        return GOOD if answers["ok"] else BROKEN

    world = World(spec(qualityGate=GATE), quality_probe=probe)
    world.run(120)
    assert world.status.phase == "Paused" and world.router_weight == 0, world.status.message
    answers["ok"] = True
    world.run(900, verbs={120: "resume"})
    assert world.status.outcome == "Promoted", world.status.message


def test_retry_after_a_failed_gate_runs_the_gate_again() -> None:
    answers = [WORSE]

    def probe(t: float, weight: int) -> qg.ProbeResult:
        return answers[0]

    world = World(spec(qualityGate=GATE), quality_probe=probe)
    world.run(100)
    assert world.status.phase == "Aborted"
    answers[0] = GOOD
    world.run(900, verbs={100: "retry"})
    assert world.status.outcome == "Promoted", world.status.message
    assert world.reasons().count("AnalysisSuccessful") >= 1


def test_waiting_for_candidate_pods_does_not_spin_on_the_gate() -> None:
    obs = rs.RolloutObservation(generation=1, model_phases={"v1": "Ready", "v2": "Ready"}, stable_replicas=4,
                                candidate_ready_replicas=0, router_weight=0, stable_serving_model="v1")
    d = rs.decide(SPEC, RolloutStatus.model_validate(BASE), obs, T0 + timedelta(seconds=1))
    assert d.requeue_after == rs.POLL_SECONDS  # the gate is not due without a ready pod; the pod poll wakes us
