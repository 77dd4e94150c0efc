"""Whole rollouts ticked through the pure decision on a simulated clock (no cluster, milliseconds each)."""

from __future__ import annotations

import math

from senseops_operator.decide import rollout_steps as rs
from senseops_operator.decide.analysis import MetricResult
from tests.operator.rollout_sim import Provider, World, spec


def confirmed(world: World) -> list[int]:
    return [w for _, w in world.weights]


def test_good_candidate_goes_5_50_100_and_promotes() -> None:
    world = World(spec())
    world.run(600)
    assert world.status.outcome == "Promoted" and world.status.phase == "Healthy"
    assert confirmed(world) == [5, 50, 100, 0]  # 0: traffic back to the stable Service, now on v2
    assert world.status.stable_model == "v2" and world.status.previous_stable_model == "v1"
    assert world.stable_model == "v2"
    assert world.candidate_replicas == 0  # scaled down after scaleDownDelaySeconds
    assert all(m.phase == "Successful" for m in world.status.measurements)
    assert "Promoted" in world.reasons()
    # the 30 s pause really held the weight at 5 % for 30 s
    at5, at50 = (t for t, w in world.weights if w in (5, 50))
    assert at50 - at5 >= 30


def test_weight_never_rises_before_the_candidate_pods_are_ready() -> None:
    world = World(spec(), pod_start_seconds=20)
    world.run(600)
    first_traffic = world.weights[0][0]
    assert first_traffic >= 20
    assert world.status.outcome == "Promoted"


def failing_after(seconds: float) -> Provider:
    def provider(metric: str, t: float, weight: int) -> MetricResult:
        return MetricResult(metric, "sum(rate(errors[1m]))", value=0.2 if t >= seconds else 0.01)
    return provider


def test_failing_candidate_aborts_weight_zero_first_then_scales_down_after_the_delay() -> None:
    world = World(spec(), provider=failing_after(20))
    world.run(400)
    s = world.status
    assert s.abort and s.phase == "Aborted" and s.outcome == "RolledBack"
    assert confirmed(world) == [5, 0]  # aborted during the 5 % step, back to 0
    assert s.abort_reason is not None and "error-ratio" in s.abort_reason and "<= 0.05" in s.abort_reason
    assert "sum(rate(errors[1m]))" in s.abort_reason and "0.2" in s.abort_reason
    assert world.candidate_replicas == 0
    # the scale-down came after the router confirmed 0, and abortScaleDownDelaySeconds later
    assert s.aborted_at is not None and s.scale_down_at is not None
    delay = (rs.analysis.parse_time(s.scale_down_at) - rs.analysis.parse_time(s.aborted_at)).total_seconds()
    assert delay == 30
    scale_downs = [i for i, a in enumerate(world.actions) if a == rs.ScaleCandidate("v2", 0)]
    weight_zero = world.actions.index(rs.SetWeight(0))
    assert scale_downs and scale_downs[0] > weight_zero
    failed = [m for m in s.measurements if m.phase == "Failed"]
    assert failed and failed[-1].value == 0.2 and failed[-1].threshold == "<= 0.05"
    assert "AnalysisAbort" in world.reasons() and "RolledBack" in world.reasons()


def test_abort_reaches_zero_within_one_interval_of_the_breach() -> None:
    world = World(spec(), provider=failing_after(20))
    world.run(400)
    zero_at = world.weights[-1][0]
    assert 20 <= zero_at <= 20 + 10 + 1  # interval 10 s, plus the tick that applies it


def nan_provider(metric: str, t: float, weight: int) -> MetricResult:
    return MetricResult(metric, "q", value=math.nan if weight >= 5 else 0.01)


def test_inconclusive_pauses_and_never_passes_until_resumed() -> None:
    world = World(spec(), provider=nan_provider)
    world.run(300)
    assert world.status.phase == "Paused"
    assert [p.reason for p in world.status.pause_conditions] == ["Inconclusive"]
    assert confirmed(world) == [5]  # held at the first step's weight, never advanced
    assert "query returned nan" in (world.status.pause_conditions[0].message or "")
    # resume gives a fresh inconclusive budget; data comes back; the rollout finishes
    world.provider = lambda m, t, w: MetricResult(m, "q", value=0.0)
    world.run(900, verbs={300: "resume"})
    assert world.status.outcome == "Promoted"


def test_provider_down_pauses_with_provider_errors_then_continues_when_it_answers() -> None:
    down = (20.0, 200.0)

    def provider(metric: str, t: float, weight: int) -> MetricResult:
        if down[0] <= t < down[1]:
            return MetricResult(metric, "q", error="connection refused")
        return MetricResult(metric, "q", value=0.01)

    world = World(spec(), provider=provider)
    world.run(190)
    assert world.status.phase == "Paused"
    assert [p.reason for p in world.status.pause_conditions] == ["ProviderErrors"]
    assert confirmed(world) == [5]  # the 30 s pause ended long ago, but nothing advanced while blind
    world.run(900)
    assert world.status.outcome == "Promoted"
    assert "Resumed" in world.reasons()


def test_crash_looping_candidate_never_gets_traffic_and_degrades_at_the_deadline() -> None:
    world = World(spec(), crash_looping=True)
    world.run(300)
    assert world.weights == []
    assert world.status.phase == "Degraded"
    assert "ProgressDeadlineExceeded" in world.reasons()
    assert "CandidateNotReady" in (world.status.message or "")
    world.crash_looping = False  # fixed: it continues and finishes
    world.run(1000)
    assert world.status.outcome == "Promoted"


def test_manual_abort_then_retry_finishes_without_touching_spec() -> None:
    s = spec()
    before = s.model_dump()
    world = World(s)
    world.run(50, verbs={20: "abort"})
    assert world.status.phase == "Aborted" and world.status.abort_reason == "aborted by hand"
    assert world.router_weight == 0
    world.run(700, verbs={100: "retry"})
    assert world.status.outcome == "Promoted" and not world.status.abort
    assert confirmed(world)[-4:] == [5, 50, 100, 0]
    assert s.model_dump() == before


def test_indefinite_pause_waits_for_promote_from_the_annotation() -> None:
    world = World(spec(steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 100}]))
    world.run(3600)
    assert world.status.phase == "Paused" and confirmed(world) == [10]
    world.annotation = "promote"
    world.run(3700)
    assert world.annotation is None  # the operator removed the verb annotation
    assert world.status.outcome == "Promoted"


def test_promote_full_skips_remaining_steps() -> None:
    world = World(spec(steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
                              {"setWeight": 100}]))
    world.run(300, verbs={100: "promote-full"})
    assert world.status.outcome == "Promoted"
    assert 50 not in confirmed(world) and confirmed(world)[-2:] == [100, 0]


def test_manual_pause_holds_and_resume_continues() -> None:
    world = World(spec())
    world.run(200, verbs={10: "pause"})
    assert world.status.phase == "Paused" and confirmed(world) == [5]
    world.run(800, verbs={200: "resume"})
    assert world.status.outcome == "Promoted"


def test_candidate_change_drains_old_candidate_then_restarts_from_step_one() -> None:
    world = World(spec())
    world.run(50)
    assert world.router_weight == 50
    world.spec = spec(candidateModel={"name": "v3"})
    world.run(700)
    assert world.status.candidate_model == "v3" and world.status.outcome == "Promoted"
    assert world.stable_model == "v3"
    after = confirmed(world)[confirmed(world).index(50) + 1:]
    assert after[0] == 0 and after[1:] == [5, 50, 100, 0]
    assert "RolloutStarted" in world.reasons()


def test_operator_restart_mid_rollout_keeps_step_and_weight() -> None:
    world = World(spec())
    world.run(70)
    mid_status, weight = world.status.model_copy(deep=True), world.router_weight
    # a fresh operator: same stored status, same world; nothing jumps, no step runs twice
    world.status = mid_status
    d = world.tick()
    assert world.router_weight == weight
    assert not any(isinstance(a, rs.SetWeight) for a in d.actions)
    world.run(700)
    assert world.status.outcome == "Promoted" and confirmed(world) == [5, 50, 100, 0]


def test_models_not_ready_stay_pending_with_no_traffic() -> None:
    world = World(spec())
    world.model_phases = {"v1": "Ready", "v2": "Verifying"}
    world.run(120)
    assert world.status.phase == "Pending" and world.weights == [] and world.candidate_replicas == 0
    assert "candidate ASRModel v2 is Verifying" in (world.status.message or "")


def test_initial_delay_keeps_every_measurement_clear_of_a_weight_change() -> None:
    # A provider that has data only once the candidate served its current weight for 40 s (a 5m-rate query
    # right after a weight change): with initialDelaySeconds 45 no measurement is ever inconclusive and the
    # rollout promotes with inconclusiveLimit 0; without the delay it pauses on the first empty answer.
    def needs_traffic(world: World) -> Provider:
        def provider(metric: str, t: float, weight: int) -> MetricResult:
            changed = max((at for at, _ in world.weights), default=0.0)
            return MetricResult(metric, "q", value=0.01 if weight and t - changed >= 40 else None)
        return provider

    metric = {"name": "error-ratio", "successMax": 0.05, "intervalSeconds": 10, "initialDelaySeconds": 45,
              "provider": {"prometheus": {"address": "http://prom:9090", "query": "q"}}}
    delayed = World(spec(analysis={"metrics": [metric]}))
    delayed.provider = needs_traffic(delayed)
    delayed.run(900)
    assert delayed.status.outcome == "Promoted", delayed.status.message
    assert confirmed(delayed) == [5, 50, 100, 0]
    assert delayed.status.measurements and all(m.phase == "Successful" for m in delayed.status.measurements)

    eager = World(spec(analysis={"metrics": [{**metric, "initialDelaySeconds": 0}]}))
    eager.provider = needs_traffic(eager)
    eager.run(900)
    assert eager.status.outcome is None and eager.status.phase == "Paused"
    assert "Inconclusive" in [p.reason for p in eager.status.pause_conditions]
