"""A simulated world for the pure Rollout decision: a clock, candidate pods, a router and a metric source.

Each tick observes the world, asks `metrics_due` which metrics to measure, calls `decide`, performs the
actions on the world and jumps the clock to the decision's requeue time. Nothing here talks to a cluster;
it exists so tests can run whole rollouts (minutes of simulated time) in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from senseops_operator.decide import quality_gate
from senseops_operator.decide import rollout_steps as rs
from senseops_operator.decide.analysis import MetricResult
from senseops_operator.decide.common import Event
from senseops_operator.models.rollout import RolloutSpec, RolloutStatus

T0 = datetime(2026, 11, 29, 7, 0, 0, tzinfo=UTC)

# provider(metric name, resolved query, seconds since T0, candidate weight) -> MetricResult
Provider = Callable[[str, float, int], MetricResult]


def good_provider(metric: str, t: float, weight: int) -> MetricResult:
    return MetricResult(metric=metric, resolved_query=f"q({metric})", value=0.01)


def spec(**overrides: Any) -> RolloutSpec:
    """A typical 5 → 50 → 100 rollout with one error-ratio metric (≤ 0.05) measured every 10 s."""
    body: dict[str, Any] = {
        "target": {"deployment": "asr", "service": "asr"},
        "stableModel": {"name": "v1"},
        "candidateModel": {"name": "v2"},
        "steps": [{"setWeight": 5}, {"pause": {"durationSeconds": 30}}, {"setWeight": 50},
                  {"analysis": {}}, {"setWeight": 100}],
        "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}},
        "analysis": {"metrics": [{"name": "error-ratio", "successMax": 0.05, "intervalSeconds": 10,
                                  "provider": {"prometheus": {"address": "http://prom:9090", "query": "q"}}}]},
        "progressDeadlineSeconds": 120,
        "abortScaleDownDelaySeconds": 30,
        "scaleDownDelaySeconds": 60,
    }
    body.update(overrides)
    return RolloutSpec.model_validate(body)


@dataclass
class World:
    spec: RolloutSpec
    provider: Provider = good_provider
    stable_replicas: int = 4
    pod_start_seconds: float = 5.0  # candidate pods get ready this long after they are asked for
    crash_looping: bool = False
    stable_move_seconds: float = 10.0
    now: datetime = T0
    status: RolloutStatus = field(default_factory=RolloutStatus)
    annotation: str | None = None
    model_phases: dict[str, str | None] = field(default_factory=lambda: {"v1": "Ready", "v2": "Ready", "v3": "Ready"})
    # golden-set probe (seconds since T0, candidate weight) -> result; asked only when the gate says it is due
    quality_probe: Callable[[float, int], quality_gate.ProbeResult] | None = None
    # state of the simulated cluster
    router_weight: int = 0
    candidate_model: str | None = None
    candidate_replicas: int = 0
    candidate_scaled_at: datetime = T0
    stable_model: str = "v1"
    stable_target: str = "v1"
    stable_moved_at: datetime = T0
    # what happened
    weights: list[tuple[float, int]] = field(default_factory=list)  # (seconds, confirmed weight) on change
    events: list[Event] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    actions: list[rs.Action] = field(default_factory=list)
    decisions: int = 0

    def seconds(self) -> float:
        return (self.now - T0).total_seconds()

    def ready_candidates(self) -> int:
        if self.crash_looping or self.candidate_model != self.spec.candidate_model.name:
            return 0
        if (self.now - self.candidate_scaled_at).total_seconds() < self.pod_start_seconds:
            return 0
        return self.candidate_replicas

    def serving_model(self) -> str | None:
        if self.stable_target != self.stable_model:
            if (self.now - self.stable_moved_at).total_seconds() >= self.stable_move_seconds:
                self.stable_model = self.stable_target
            else:
                return None  # rolling: mixed pods
        return self.stable_model

    def tick(self) -> rs.RolloutDecision:
        due = rs.metrics_due(self.spec, self.status, self.now)
        results = tuple(self.provider(m.name, self.seconds(), self.router_weight) for m in due)
        quality = None
        if self.quality_probe is not None and quality_gate.is_due(self.spec.quality_gate, self.status, self.now,
                                                                  self.ready_candidates() > 0):
            quality = self.quality_probe(self.seconds(), self.router_weight)
        obs = rs.RolloutObservation(
            generation=1, model_phases=self.model_phases, stable_replicas=self.stable_replicas,
            candidate_ready_replicas=self.ready_candidates(), router_weight=self.router_weight,
            stable_serving_model=self.serving_model(), results=results, annotation_verb=self.annotation,
            quality=quality,
        )
        d = rs.decide(self.spec, self.status, obs, self.now)
        self.decisions += 1
        # The API server stores the patch on top of what it had (null removes a field).
        stored = self.status.model_dump(by_alias=True, exclude_none=True, mode="json")
        stored.update(d.status_patch)
        self.status = RolloutStatus.model_validate({k: v for k, v in stored.items() if v is not None})
        for a in d.actions:
            self.perform(a)
        self.events.extend(d.events)
        if not self.phases or self.phases[-1] != self.status.phase:
            self.phases.append(str(self.status.phase))
        return d

    def perform(self, a: rs.Action) -> None:
        self.actions.append(a)
        match a:
            case rs.SetWeight(weight=w):
                if w != self.router_weight:
                    self.router_weight = w
                    self.weights.append((self.seconds(), w))
            case rs.ScaleCandidate(model=m, replicas=n):
                if m != self.candidate_model or n > self.candidate_replicas:
                    self.candidate_scaled_at = self.now
                self.candidate_model, self.candidate_replicas = m, n
            case rs.MoveStable(model=m):
                if m != self.stable_target:
                    self.stable_target, self.stable_moved_at = m, self.now
            case rs.ClearVerbAnnotation():
                self.annotation = None

    def run(self, until_seconds: float, *, verbs: dict[float, str] | None = None,
            changes: dict[float, Callable[[World], None]] | None = None) -> None:
        """Tick until `until_seconds` of simulated time; at given times set a verb flag or change the world."""
        verbs, changes = dict(verbs or {}), dict(changes or {})
        while self.seconds() < until_seconds:
            for at in sorted(v for v in verbs if v <= self.seconds()):
                self.status = self.status.model_copy(update={_VERB_FIELDS[verbs.pop(at)]: True})
            for at in sorted(c for c in changes if c <= self.seconds()):
                changes.pop(at)(self)
            d = self.tick()
            step = d.requeue_after if d.requeue_after is not None else 60.0
            pending = [t for t in [*verbs, *changes] if t > self.seconds()]
            if pending:
                step = min(step, min(pending) - self.seconds())
            self.now += timedelta(seconds=max(step, 0.5))

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


_VERB_FIELDS = {"promote": "promote", "promote-full": "promote_full", "abort": "abort", "retry": "retry",
                "pause": "pause", "resume": "resume"}
