"""The Rollout step machine: `decide(spec, status, observation, now) -> RolloutDecision` (pure).

Shaped like Argo Rollouts' reconcile: everything observed arrives in one `RolloutObservation`; a flat
list of small steps (verbs, candidate change, analysis, abort, promotion, the current step) records intent
on a working copy of the status and collects typed actions; the handler performs the actions in order and
writes the status once.

Rules it keeps (DESIGN §3, issue 10):
- `actualWeight` is what the traffic router confirms; a step with `setWeight` completes only when the
  router confirms that weight.
- Never send traffic to a candidate with no ready pods: with none ready the weight goes (or stays) at 0.
  The weight only rises when the candidate has the replicas the new weight needs.
- Canary replicas follow the weight: ceil(stable replicas × weight / 100), at least one.
- A paused rollout holds its weight; it never advances while a metric's provider is failing.
- Abort: weight 0 first; the candidate is scaled down `abortScaleDownDelaySeconds` after the router
  confirms 0. Promotion: candidate at full size and 100 %, then the stable Deployment moves to the candidate
  model, then traffic returns to stable, then the candidate is scaled down after `scaleDownDelaySeconds`.
- A new candidate in spec drains the old candidate's traffic to 0 and restarts from step 1.
- Manual verbs come from status fields or the `senseops.dev/verb` annotation, never from spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from senseops_operator.decide import analysis, quality_gate
from senseops_operator.decide.common import Decision, Event, condition, merge_conditions, timestamp
from senseops_operator.decide.references import models_resolved
from senseops_operator.models.rollout import (
    AnalysisMetric,
    Measurement,
    PauseCondition,
    PauseReason,
    RolloutPhase,
    RolloutSpec,
    RolloutStatus,
    Step,
)

Verb = Literal["promote", "promote-full", "abort", "retry", "pause", "resume"]
VERBS: tuple[Verb, ...] = ("promote", "promote-full", "abort", "retry", "pause", "resume")
VERB_ANNOTATION = "senseops.dev/verb"

POLL_SECONDS = 5.0  # waiting on pods or the stable Deployment
CONFIRM_SECONDS = 1.0  # a weight was just asked for: read the router's confirmation soon
ADVANCE_SECONDS = 1.0  # a step just completed: look again at once (one step per reconcile)
MAX_REQUEUE_SECONDS = 300.0

# Pause reasons that hold the rollout (CandidateNotReady is a wait, not a hold: it ends by itself).
HOLDING: frozenset[PauseReason] = frozenset({"PausedByStep", "Inconclusive", "ProviderErrors", "Manual"})


# ---- what the handler observed ------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutObservation:
    """Everything the handler saw before deciding (read once per reconcile)."""

    generation: int
    model_phases: Mapping[str, str | None]  # ASRModel name → its status.phase (None: not found)
    stable_replicas: int  # the target Deployment's spec.replicas
    candidate_ready_replicas: int  # ready pods that serve the spec's candidate model
    router_weight: int | None  # weight the traffic router confirms now; None: could not read it
    stable_serving_model: str | None = None  # model every available stable pod runs (None: mixed / rolling)
    results: tuple[analysis.MetricResult, ...] = ()  # metrics measured for this reconcile
    annotation_verb: str | None = None  # value of the senseops.dev/verb annotation, if any
    target_missing: str | None = None  # why the target Deployment/Service cannot be used (None: both exist)
    stable_template_model: str | None = None  # model in the stable Deployment's pod template (version label)
    quality: quality_gate.ProbeResult | None = None  # the golden-set probe, when it ran for this reconcile


# ---- what the handler must do ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleCandidate:
    """Create or update the candidate Deployment/Service for `model` with `replicas` pods (0: scale down)."""

    model: str
    replicas: int


@dataclass(frozen=True)
class SetWeight:
    """Ask the traffic router to send `weight` % of new requests/streams to the candidate."""

    weight: int


@dataclass(frozen=True)
class MoveStable:
    """Roll the stable Deployment onto `model` (surge first, so capacity never dips)."""

    model: str


@dataclass(frozen=True)
class ClearVerbAnnotation:
    """Remove the senseops.dev/verb annotation once its verb was acted on."""


Action = ScaleCandidate | SetWeight | MoveStable | ClearVerbAnnotation


@dataclass(frozen=True)
class RolloutDecision:
    status: RolloutStatus
    actions: tuple[Action, ...]
    events: tuple[Event, ...]
    requeue_after: float | None
    # The status fields to write: everything except verb flags nobody acted on (so a verb the CLI set
    # between our read and our write is not overwritten).
    status_patch: dict[str, Any] = field(default_factory=dict)

    def as_decision(self) -> Decision:
        return Decision(status=self.status_patch, events=self.events, requeue_after=self.requeue_after)


# ---- pure arithmetic --------------------------------------------------------------------------------------


def canary_replicas(stable_replicas: int, weight: int) -> int:
    """Candidate pods for a weight: the stable count scaled by the weight, rounded up, at least one."""
    return max(1, math.ceil(max(stable_replicas, 1) * weight / 100))


def weight_plan(steps: list[Step]) -> list[int]:
    return [s.set_weight for s in steps if s.set_weight is not None]


def describe_step(steps: list[Step], index: int) -> str:
    if index >= len(steps):
        return "promotion"
    s = steps[index]
    where = f"step {index + 1}/{len(steps)}"
    if s.set_weight is not None:
        return f"{where} setWeight {s.set_weight}%"
    if s.pause is not None:
        d = s.pause.duration_seconds
        return f"{where} pause " + ("until promoted" if d is None else f"{d}s")
    return f"{where} analysis"


def requested_verbs(status: RolloutStatus, annotation: str | None) -> frozenset[Verb]:
    """Verbs asked for through status flags or the annotation (unknown annotation values are ignored)."""
    verbs: set[Verb] = set()
    flags: dict[Verb, bool] = {
        "promote": status.promote, "promote-full": status.promote_full, "retry": status.retry,
        "pause": status.pause, "resume": status.resume,
    }
    verbs.update(v for v, on in flags.items() if on)
    if annotation is not None:
        verbs.update(v for v in VERBS if v == annotation.strip())
    return frozenset(verbs)


# ---- the machine -------------------------------------------------------------------------------------------


@dataclass
class _Work:
    """Intent collected while deciding (the Argo `rolloutContext`)."""

    spec: RolloutSpec
    obs: RolloutObservation
    now: datetime
    s: RolloutStatus
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wakeups: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type=type_, reason=reason, message=message))

    def wake_in(self, seconds: float) -> None:
        self.wakeups.append(max(seconds, ADVANCE_SECONDS))

    def wake_at(self, when: datetime) -> None:
        self.wake_in((when - self.now).total_seconds())

    def set_weight(self, weight: int) -> None:
        """Record the desired weight and ask the router for it unless it already confirms it."""
        self.s.desired_weight = weight
        if self.obs.router_weight != weight:
            self.actions.append(SetWeight(weight))
            self.wake_in(CONFIRM_SECONDS)

    def add_pause(self, reason: PauseReason, message: str) -> None:
        for p in self.s.pause_conditions:
            if p.reason == reason:
                p.message = message
                return
        self.s.pause_conditions.append(PauseCondition(reason=reason, message=message, start_time=timestamp(self.now)))
        if reason != "CandidateNotReady":
            self.event("Warning" if reason in ("Inconclusive", "ProviderErrors") else "Normal", "Paused",
                       f"{reason}: {message}")

    def drop_pause(self, reason: PauseReason, why: str) -> None:
        before = len(self.s.pause_conditions)
        self.s.pause_conditions = [p for p in self.s.pause_conditions if p.reason != reason]
        if len(self.s.pause_conditions) != before and reason != "CandidateNotReady":
            self.event("Normal", "Resumed", f"{reason} pause cleared: {why}")

    def holding(self) -> list[PauseCondition]:
        return [p for p in self.s.pause_conditions if p.reason in HOLDING]

    def step_age(self) -> float:
        started = self.s.step_started_at
        return 0.0 if started is None else (self.now - analysis.parse_time(started)).total_seconds()


def _restart(w: _Work, why: str) -> None:
    """Back to step 1 with clean analysis state (candidate change or retry)."""
    s = w.s
    s.current_step_index = 0
    s.step_started_at = timestamp(w.now)
    s.started_at = timestamp(w.now)
    s.measurements, s.tallies, s.pause_conditions = [], [], []
    s.abort, s.abort_reason, s.aborted_at, s.scale_down_at = False, None, None, None
    s.outcome, s.finished_at, s.degraded = None, None, False
    s.desired_weight = 0
    w.event("Normal", "RolloutStarted", f"{why}; {describe_step(w.spec.steps, 0)}")


def _apply_verbs(w: _Work, verbs: frozenset[Verb]) -> None:
    s = w.s
    if "retry" in verbs and s.abort:
        _restart(w, "retry requested after abort")
    if (("abort" in verbs and not s.abort) or (s.abort and s.abort_reason is None)) and s.outcome is None:
        # `status.abort: true` set by the CLI arrives without a reason; the annotation verb sets it here.
        s.abort, s.abort_reason = True, "aborted by hand"
        w.event("Warning", "AbortRequested", "aborted by hand; traffic returns to stable")
    if "pause" in verbs and s.outcome is None and not s.abort:
        w.add_pause("Manual", "paused by hand; resume to continue")
    if "resume" in verbs:
        w.drop_pause("Manual", "resumed by hand")
        w.drop_pause("Inconclusive", "resumed by hand")
        for t in s.tallies:  # a resumed rollout gets a fresh inconclusive budget
            t.inconclusive = 0


def _analyse(w: _Work) -> None:
    """Judge this reconcile's measurements, update tallies, and turn limits into abort / pause intent."""
    metrics = {m.name: m for m in (w.spec.analysis.metrics if w.spec.analysis else [])}
    tallies = {t.metric: t for t in w.s.tallies}
    for result in w.obs.results:
        metric = metrics.get(result.metric)
        if metric is None:
            continue
        m = analysis.judge(metric, result, w.now)
        tallies[m.metric] = analysis.tally(tallies.get(m.metric), m)
        w.s.measurements = [*w.s.measurements, m][-MAX_KEPT_MEASUREMENTS:]
        w.events.append(analysis.measurement_event(m))
    w.s.tallies = list(tallies.values())
    if w.s.abort or w.s.outcome is not None:
        return
    verdicts = {name: analysis.verdict(metrics[name], t) for name, t in tallies.items() if name in metrics}
    for name, v in verdicts.items():
        last = _last_measurement(w.s, name)
        if v == "Abort" and last is not None:
            w.s.abort = True
            limit = metrics[name].failure_limit
            w.s.abort_reason = f"analysis failed beyond failureLimit {limit}: {analysis.describe(last)}"
            w.event("Warning", "AnalysisAbort", w.s.abort_reason)
            return
    errors = [n for n, v in verdicts.items() if v == "ProviderErrors"]
    if errors:
        last = _last_measurement(w.s, errors[0])
        w.add_pause("ProviderErrors", f"{', '.join(errors)}: provider failed {tallies[errors[0]].consecutive_errors} "
                    f"times in a row ({last.message if last else 'no answer'})")
    else:
        w.drop_pause("ProviderErrors", "the metric provider answers again")
    unsure = [n for n, v in verdicts.items() if v == "Inconclusive"]
    if unsure:
        last = _last_measurement(w.s, unsure[0])
        detail = analysis.describe(last) if last else unsure[0]
        w.add_pause("Inconclusive", f"inconclusive beyond inconclusiveLimit: {detail}")


MAX_KEPT_MEASUREMENTS = 20


def _quality_gate(w: _Work) -> None:
    """The golden-set probe's result, if it ran: a measurement like any metric; abort or pause on its limits."""
    gate = w.spec.quality_gate
    if gate is None:
        return
    u = quality_gate.update(gate, w.s, w.obs.quality, w.now)
    if u.measurement is not None and u.tally is not None:
        w.s.measurements = [*w.s.measurements, u.measurement][-MAX_KEPT_MEASUREMENTS:]
        w.s.tallies = [t for t in w.s.tallies if t.metric != quality_gate.GATE_METRIC] + [u.tally]
    w.events.extend(u.events)
    if u.abort_reason is not None:
        w.s.abort, w.s.abort_reason = True, u.abort_reason
    elif u.pause_message is not None:
        w.add_pause("Inconclusive", u.pause_message)
    if not w.s.abort and w.s.outcome is None and w.obs.candidate_ready_replicas > 0:  # else the pod poll wakes us
        # At most every POLL_SECONDS: a due probe may still wait for a pod that runs the candidate model.
        w.wake_at(max(quality_gate.next_due(gate, w.s, w.now), w.now + timedelta(seconds=POLL_SECONDS)))


def _last_measurement(s: RolloutStatus, metric: str) -> Measurement | None:
    return next((m for m in reversed(s.measurements) if m.metric == metric), None)


def active_metrics(spec: RolloutSpec, status: RolloutStatus) -> list[AnalysisMetric]:
    """Metrics that should be measured now: all of them in the background while the candidate has traffic,
    and the current analysis step's metrics even at weight 0. None once the rollout is over."""
    if spec.analysis is None or status.abort or status.outcome is not None:
        return []
    metrics = spec.analysis.metrics
    index = status.current_step_index or 0
    step = spec.steps[index] if index < len(spec.steps) else None
    if (status.actual_weight or 0) > 0:
        return list(metrics)
    if step is not None and step.analysis is not None:
        names = set(step.analysis.metrics)
        return [m for m in metrics if not names or m.name in names]
    return []


def metrics_due(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> list[AnalysisMetric]:
    """The active metrics whose interval has passed: the handler queries exactly these before deciding."""
    tallies = {t.metric: t for t in status.tallies}
    started = _step_started(status)
    return [m for m in active_metrics(spec, status) if analysis.is_due(m, tallies.get(m.name), now, started)]


def _step_started(status: RolloutStatus) -> datetime | None:
    return analysis.parse_time(status.step_started_at) if status.step_started_at else None


def _provider_blocking(w: _Work) -> str | None:
    """A reason not to advance: some active metric's latest measurement is an Error (provider down)."""
    for m in active_metrics(w.spec, w.s):
        last = _last_measurement(w.s, m.name)
        if last is not None and last.phase == "Error":
            return f"waiting for the metric provider ({m.name}: {last.message})"
    return None


def _aborted(w: _Work) -> None:
    s, candidate = w.s, w.s.candidate_model or w.spec.candidate_model.name
    if w.obs.stable_template_model not in (None, s.stable_model) and s.stable_model is not None:
        # Aborted mid-promotion, after the stable Deployment began moving: move it back first, while the
        # candidate still carries the traffic.
        w.actions.append(MoveStable(s.stable_model))
        w.notes.append(f"aborted during promotion: moving the stable Deployment back to {s.stable_model}")
        w.wake_in(POLL_SECONDS)
        return
    w.set_weight(0)
    if w.obs.router_weight != 0:
        w.notes.append(f"aborted ({s.abort_reason}); waiting for the router to confirm weight 0")
        return
    if s.aborted_at is None:
        s.aborted_at = timestamp(w.now)
        s.scale_down_at = timestamp(w.now + timedelta(seconds=w.spec.abort_scale_down_delay_seconds))
        s.outcome, s.finished_at = "RolledBack", timestamp(w.now)
        w.event("Warning", "RolledBack", f"all traffic back on stable {s.stable_model}; reason: {s.abort_reason}")
    _scale_down_when_due(w, candidate)
    w.notes.append(f"aborted: {s.abort_reason}; all traffic on stable {s.stable_model}; retry to start again")


def _scale_down_when_due(w: _Work, candidate: str) -> None:
    if w.s.scale_down_at is None:
        return
    when = analysis.parse_time(w.s.scale_down_at)
    if w.now >= when:
        w.actions.append(ScaleCandidate(candidate, 0))
    else:
        w.wake_at(when)


def _promote(w: _Work) -> None:
    """All steps done: candidate at full size and 100 %, stable moves to it, traffic returns to stable."""
    s, candidate = w.s, w.spec.candidate_model.name
    full = max(w.obs.stable_replicas, 1)
    if s.stable_model != candidate and w.obs.stable_serving_model != candidate:
        w.actions.append(ScaleCandidate(candidate, full))
        if w.obs.candidate_ready_replicas < full:
            ready = w.obs.candidate_ready_replicas
            w.notes.append(f"promoting: waiting for {full} ready candidate pods ({ready} ready)")
            w.wake_in(POLL_SECONDS)
            _check_deadline(w, "CandidateNotReady",
                            f"{w.obs.candidate_ready_replicas}/{full} candidate pods ready for promotion")
            return
        w.set_weight(100)
        if w.obs.router_weight != 100:
            w.notes.append("promoting: waiting for the router to confirm 100% on the candidate")
            return
        w.actions.append(MoveStable(candidate))
        w.notes.append(f"promoting: moving the stable Deployment to {candidate}")
        w.wake_in(POLL_SECONDS)
        _check_deadline(w, "StableNotUpdated", f"stable Deployment not yet serving {candidate}")
        return
    # The stable Deployment serves the candidate model: send traffic back to it.
    w.set_weight(0)
    if w.obs.router_weight != 0:
        w.notes.append("promoting: stable serves the new model; waiting for the router to confirm weight 0")
        return
    s.previous_stable_model, s.stable_model = s.stable_model, candidate
    s.outcome, s.finished_at = "Promoted", timestamp(w.now)
    s.scale_down_at = timestamp(w.now + timedelta(seconds=w.spec.scale_down_delay_seconds))
    s.pause_conditions = []
    w.event("Normal", "Promoted", f"{candidate} is the stable model (previous: {s.previous_stable_model})")


def _check_deadline(w: _Work, reason: str, detail: str) -> None:
    """No progress on this step within progressDeadlineSeconds → Degraded (it keeps trying)."""
    deadline = w.spec.progress_deadline_seconds
    if w.step_age() >= deadline:
        if not w.s.degraded:
            w.event("Warning", "ProgressDeadlineExceeded", f"{reason}: {detail} after {deadline}s")
        w.s.degraded = True
        w.notes.append(f"Degraded ({reason}): {detail}; progressDeadlineSeconds {deadline} exceeded")
    else:
        started = analysis.parse_time(w.s.step_started_at) if w.s.step_started_at else w.now
        w.wake_at(started + timedelta(seconds=deadline))


def _advance(w: _Work, why: str) -> None:
    s = w.s
    index = (s.current_step_index or 0) + 1
    s.current_step_index, s.step_started_at, s.degraded = index, timestamp(w.now), False
    s.pause_conditions = [p for p in s.pause_conditions if p.reason != "PausedByStep"]
    w.event("Normal", "StepCompleted", f"{why}; next: {describe_step(w.spec.steps, index)}")
    w.wake_in(ADVANCE_SECONDS)


def _run_step(w: _Work, verbs: frozenset[Verb]) -> None:
    s, spec, obs = w.s, w.spec, w.obs
    index = s.current_step_index or 0
    step = spec.steps[index]
    candidate = spec.candidate_model.name
    current = s.desired_weight or 0
    held = w.holding()
    blocked = _provider_blocking(w)
    # Candidate size follows the weight it is about to carry.
    target = step.set_weight if step.set_weight is not None else current
    need = canary_replicas(obs.stable_replicas, target)
    w.actions.append(ScaleCandidate(candidate, need))
    ready = obs.candidate_ready_replicas
    if ready == 0:
        w.add_pause("CandidateNotReady", f"0/{need} candidate pods ready; no traffic goes to the candidate")
        w.set_weight(0)
        w.wake_in(POLL_SECONDS)
        _check_deadline(w, "CandidateNotReady", f"0/{need} candidate pods ready")
        return
    w.drop_pause("CandidateNotReady", "candidate pods are ready")
    if "promote" in verbs:
        w.set_weight(current)
        _advance(w, f"{describe_step(spec.steps, index)} skipped by hand (promote)")
        return
    if held or blocked:
        # Hold at what the router confirms: a raise asked for just before the hold (a provider error that
        # arrives while 5 → 50 is in flight) must not land while the rollout is blind or paused. Lowering is
        # always allowed.
        w.set_weight(min(current, s.actual_weight or 0))
        why = "; ".join([f"{p.reason}: {p.message}" for p in held] + ([blocked] if blocked else []))
        w.notes.append(f"paused at {describe_step(spec.steps, index)}: {why}")
        if blocked:
            w.wake_in(POLL_SECONDS)
        return
    gate = spec.quality_gate
    if step.set_weight and not current and gate is not None and not quality_gate.passed(gate, s):
        w.set_weight(0)  # no traffic before the golden set passed on the candidate
        w.notes.append(f"{describe_step(spec.steps, index)}: {quality_gate.waiting_note(gate, s)}")
        w.wake_in(POLL_SECONDS)
        return
    if step.set_weight is not None:
        if ready < need:
            w.set_weight(min(current, step.set_weight))
            where = describe_step(spec.steps, index)
            w.notes.append(f"{where}: waiting for {need} ready candidate pods ({ready} ready)")
            w.wake_in(POLL_SECONDS)
            _check_deadline(w, "CandidateNotReady", f"{ready}/{need} candidate pods ready")
            return
        w.set_weight(step.set_weight)
        if obs.router_weight != step.set_weight:
            w.notes.append(f"{describe_step(spec.steps, index)}: waiting for the router to confirm "
                           f"(it reports {obs.router_weight})")
            _check_deadline(w, "RouterNotConfirmed", f"router reports {obs.router_weight}, want {step.set_weight}")
            return
        _advance(w, f"router confirms {step.set_weight}% on {candidate}")
        return
    w.set_weight(current)
    if step.pause is not None:
        if step.pause.duration_seconds is None:
            w.add_pause("PausedByStep", f"{describe_step(spec.steps, index)}; promote to continue")
            w.notes.append(f"paused at {describe_step(spec.steps, index)}; promote to continue")
            return
        ends = (analysis.parse_time(s.step_started_at) if s.step_started_at else w.now) + timedelta(
            seconds=step.pause.duration_seconds)
        if w.now >= ends:
            _advance(w, f"pause of {step.pause.duration_seconds}s ended")
        else:
            w.notes.append(f"{describe_step(spec.steps, index)}: {int((ends - w.now).total_seconds())}s left")
            w.wake_at(ends)
        return
    # Analysis step: every named metric needs a Successful measurement taken during this step.
    metrics = active_metrics(spec, s)
    started = analysis.parse_time(s.step_started_at) if s.step_started_at else w.now
    waiting = []
    for m in metrics:
        last = _last_measurement(s, m.name)
        if last is None or last.at is None or analysis.parse_time(last.at) < started or last.phase != "Successful":
            waiting.append(m.name)
            tally = next((t for t in s.tallies if t.metric == m.name), None)
            w.wake_at(analysis.next_due(m, tally, w.now, _step_started(s)))
    if waiting:
        w.notes.append(f"{describe_step(spec.steps, index)}: waiting for a passing measurement of {', '.join(waiting)}")
        return
    _advance(w, f"analysis passed ({', '.join(m.name for m in metrics)})")


def _phase(w: _Work) -> RolloutPhase:
    s = w.s
    if s.abort:
        return "Aborted"
    if s.outcome == "Promoted":
        return "Healthy"
    if s.degraded:
        return "Degraded"
    if w.holding():
        return "Paused"
    return "Progressing"


def _models_ready(w: _Work) -> str | None:
    """None when stable and candidate ASRModels are Ready, else why not."""
    stable = w.s.stable_model or w.spec.stable_model.name
    for role, name in (("stable", stable), ("candidate", w.spec.candidate_model.name)):
        phase = w.obs.model_phases.get(name)
        if phase != "Ready":
            return f"{role} ASRModel {name} " + ("not found" if phase is None else f"is {phase}, not Ready")
    return None


def decide(spec: RolloutSpec, status: RolloutStatus, obs: RolloutObservation, now: datetime) -> RolloutDecision:
    """One reconcile of a Rollout: the new status, the actions to perform in order, events, next look."""
    w = _Work(spec=spec, obs=obs, now=now, s=status.model_copy(deep=True))
    s = w.s
    s.actual_weight = obs.router_weight if obs.router_weight is not None else (s.actual_weight or 0)
    candidate = spec.candidate_model.name
    if s.candidate_model not in (None, candidate) and s.outcome != "Promoted" and obs.router_weight != 0:
        # Take the old candidate's traffic away before its pods change model (verbs wait for the next look).
        w.set_weight(0)
        w.notes.append(f"candidate changed from {s.candidate_model} to {candidate}: draining the old candidate first")
        return _finish(w, status)
    verbs = requested_verbs(status, obs.annotation_verb)
    s.promote = s.promote_full = s.retry = s.pause = s.resume = False
    if obs.annotation_verb is not None:
        w.actions.append(ClearVerbAnnotation())

    if s.candidate_model is None:
        s.stable_model = s.stable_model or spec.stable_model.name
        s.candidate_model = candidate
        _restart(w, f"rollout of {candidate} over stable {s.stable_model} started")
    elif s.candidate_model != candidate:
        old = s.candidate_model
        s.candidate_model = candidate
        _restart(w, f"candidate changed from {old} to {candidate}; restarting from step 1")
    _apply_verbs(w, verbs)

    if obs.target_missing is not None:
        w.notes.append(f"pending: {obs.target_missing}")
        w.wake_in(30.0)
        return _finish(w, status, phase="Pending")
    not_started = (s.current_step_index or 0) == 0 and (s.desired_weight or 0) == 0 and not s.abort
    pending = _models_ready(w) if not_started and s.outcome is None else None
    if pending is not None:
        w.set_weight(0)
        w.notes.append(f"pending: {pending}")
        w.wake_in(30.0)
        return _finish(w, status, phase="Pending")

    _analyse(w)
    _quality_gate(w)
    if s.abort:
        _aborted(w)
    elif s.outcome == "Promoted":
        _scale_down_when_due(w, candidate)
        w.notes.append(f"promoted: {s.stable_model} is stable (previous {s.previous_stable_model})")
    else:
        if "promote-full" in verbs:
            s.current_step_index = len(spec.steps)
            s.step_started_at = timestamp(now)
            s.pause_conditions = []
            w.event("Normal", "PromotedFull", "all remaining steps skipped by hand (promote --full)")
        if (s.current_step_index or 0) >= len(spec.steps):
            _promote(w)
        else:
            _run_step(w, verbs)
    for m in active_metrics(spec, s):
        tally = next((t for t in s.tallies if t.metric == m.name), None)
        w.wake_at(analysis.next_due(m, tally, now, _step_started(s)))
    return _finish(w, status)


def _finish(w: _Work, before: RolloutStatus, phase: RolloutPhase | None = None) -> RolloutDecision:
    s = w.s
    s.observed_generation = w.obs.generation
    s.phase = phase or _phase(w)
    plan = " → ".join(f"{x}%" for x in weight_plan(w.spec.steps))
    s.message = "; ".join(w.notes) or f"{s.phase} at {describe_step(w.spec.steps, s.current_step_index or 0)}"
    if before.phase != s.phase:
        w.event("Warning" if s.phase in ("Aborted", "Degraded") else "Normal", f"Phase{s.phase}", s.message)
    progressing = condition(
        "Progressing",
        "True" if s.phase in ("Progressing", "Paused") else "False",
        {"Aborted": "RolloutAborted", "Healthy": "Promoted", "Degraded": "ProgressDeadlineExceeded",
         "Pending": "ModelsNotReady", "Paused": "Paused", "Progressing": "Stepping"}[s.phase],
        s.message,
    )
    accepted = condition("Accepted", "True", "SpecValid", f"weight plan {plan}")
    resolved = models_resolved({"stableModel": s.stable_model or w.spec.stable_model.name,
                                "candidateModel": w.spec.candidate_model.name}, dict(w.obs.model_phases))
    old_conditions = [c.model_dump(by_alias=True, exclude_none=True) for c in before.conditions]
    merged = merge_conditions(old_conditions, [accepted, resolved, progressing], w.now, w.obs.generation)
    s.conditions = RolloutStatus.model_validate({"conditions": merged}).conditions
    requeue = min(w.wakeups) if w.wakeups else None
    if requeue is not None:
        requeue = min(requeue, MAX_REQUEUE_SECONDS)
    patch = s.model_dump(by_alias=True, exclude_none=True, mode="json")
    for name in ("abort", "promote", "promoteFull", "retry", "pause", "resume"):
        if patch.get(name) == before.model_dump(by_alias=True, mode="json").get(name):
            patch.pop(name, None)
    for name in ("abortReason", "abortedAt", "scaleDownAt", "outcome", "finishedAt"):
        patch.setdefault(name, None)  # cleared fields must be written as null to disappear
    return RolloutDecision(status=s, actions=_dedupe(w.actions), events=tuple(w.events), requeue_after=requeue,
                           status_patch=patch)


def _dedupe(actions: list[Action]) -> tuple[Action, ...]:
    """The last SetWeight and the last ScaleCandidate win; order of first appearance is kept."""
    last: dict[type, Action] = {}
    for a in actions:
        last[type(a)] = a
    seen: list[Action] = []
    for a in actions:
        if last[type(a)] not in seen:
            seen.append(last[type(a)])
    return tuple(seen)
