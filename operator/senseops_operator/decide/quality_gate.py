"""The golden-set quality gate of a Rollout (pure): scores, verdicts, and when the probe is due.

Before the candidate gets any traffic, the golden set goes through the candidate and the stable Service and
both transcripts are scored against the references with the project's own normaliser
(`senseops_common.text`). The candidate passes when its error rate is at most stable's plus
`maxDegradation`. Rules (issue 10 item 6):
- worse beyond the margin → `Failed`; beyond `failureLimit` → abort with `QualityGateFailed`, both numbers
  in the reason and an Event;
- a probe that could not measure (a Service without ready pods, an HTTP error, an unreadable golden set) is
  `Inconclusive`, tried again soon, never a pass; beyond `inconclusiveLimit` → pause (resume to retry);
- once passed, the probe repeats every `intervalSeconds` while the rollout runs, and its results are
  measurements like any analysis metric (named `quality-gate`), counted against the same limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from senseops_common.text import error_rate, normalize_text
from senseops_operator import constants as c
from senseops_operator.decide import analysis
from senseops_operator.decide.common import Event, timestamp
from senseops_operator.models.rollout import Measurement, MeasurementPhase, MetricTally, QualityGate, RolloutStatus

GATE_METRIC: Final = "quality-gate"
Metric = Literal["cer", "wer"]
GateVerdict = Literal["Healthy", "Abort", "Inconclusive"]


@dataclass(frozen=True)
class ProbeResult:
    """What one run of the golden-set probe got: both sides' error rates over the same clips, or why not."""

    source: str  # which golden set, e.g. "s3://b/golden/manifest.jsonl"
    clips: int = 0
    candidate: float | None = None
    stable: float | None = None
    error: str | None = None  # set when the probe could not measure (never a pass)


def _characters(text: str) -> str:
    """Normalised text with every character a unit of its own (so `error_rate` counts characters)."""
    return " ".join(normalize_text(text).replace(" ", ""))


def score(references: Sequence[str], hypotheses: Sequence[str], metric: Metric) -> float:
    """CER (every character a unit) or WER (words; each CJK character counts as a word) of the hypotheses."""
    if metric == "cer":
        references = [_characters(r) for r in references]
        hypotheses = [_characters(h) for h in hypotheses]
    return error_rate(references, hypotheses).rate


def threshold_text(gate: QualityGate, stable: float | None) -> str:
    base = "stable" if stable is None else f"{stable:.4f}"
    return f"<= {base} + {gate.max_degradation:g} (stable {gate.metric.upper()} + maxDegradation)"


def judge(gate: QualityGate, result: ProbeResult, now: datetime) -> Measurement:
    """One probe → a Measurement: value is the candidate's error rate, the threshold names stable's."""
    name = gate.metric.upper()
    query = f"golden set {result.source}: {result.clips} clips, {gate.metric} candidate vs stable"
    phase: MeasurementPhase
    if result.error is not None or result.candidate is None or result.stable is None:
        phase, value = "Inconclusive", None
        message = f"probe could not measure: {result.error or 'no score for one side'}"
    else:
        value = result.candidate
        # Rounded so a float artefact (0.1 + 0.02) cannot fail a candidate that equals the limit.
        failed = round(result.candidate, 9) > round(result.stable + gate.max_degradation, 9)
        phase = "Failed" if failed else "Successful"
        verb = "worse than" if failed else "within"
        message = (f"candidate {name} {result.candidate:.4f} vs stable {name} {result.stable:.4f}: {verb} the "
                   f"margin {gate.max_degradation:g}")
    return Measurement(metric=GATE_METRIC, phase=phase, value=value, threshold=threshold_text(gate, result.stable),
                       resolved_query=query, message=message, at=timestamp(now))


def verdict(gate: QualityGate, t: MetricTally) -> GateVerdict:
    """What the gate's counts mean: failures beyond the limit abort, no-data beyond the limit pauses."""
    if t.failed > gate.failure_limit:
        return "Abort"
    if t.inconclusive > gate.inconclusive_limit:
        return "Inconclusive"
    return "Healthy"


def tally_of(status: RolloutStatus) -> MetricTally | None:
    return next((t for t in status.tallies if t.metric == GATE_METRIC), None)


def last_measurement(status: RolloutStatus) -> Measurement | None:
    return next((m for m in reversed(status.measurements) if m.metric == GATE_METRIC), None)


def passed(gate: QualityGate | None, status: RolloutStatus) -> bool:
    """May the candidate get traffic? True without a gate, or once a probe passed since the rollout (re)started
    (a restart or retry clears the tallies, so the gate runs again)."""
    if gate is None:
        return True
    t = tally_of(status)
    return t is not None and t.successful > 0


def next_due(gate: QualityGate, status: RolloutStatus, now: datetime) -> datetime:
    """When the probe should run next: at once when never run; soon after an inconclusive probe (within the
    limit); else one interval after the last probe."""
    t = tally_of(status)
    if t is None or t.last_measured_at is None:
        return now
    last = last_measurement(status)
    retrying = last is not None and last.phase == "Inconclusive" and t.inconclusive <= gate.inconclusive_limit
    wait = c.QUALITY_GATE_RETRY_SECONDS if retrying else gate.interval_seconds
    return analysis.parse_time(t.last_measured_at) + timedelta(seconds=wait)


def is_due(gate: QualityGate | None, status: RolloutStatus, now: datetime, candidate_ready: bool) -> bool:
    """Should the handler run the probe before this reconcile? Only while the rollout runs and the candidate
    has ready pods (a probe of a candidate that is still starting would only measure its start-up)."""
    if gate is None or status.abort or status.outcome is not None or not candidate_ready:
        return False
    return now >= next_due(gate, status, now)


@dataclass(frozen=True)
class GateUpdate:
    """The gate's part of one reconcile: the new measurement (if a probe ran), what it means, events."""

    measurement: Measurement | None
    tally: MetricTally | None
    abort_reason: str | None
    pause_message: str | None
    events: tuple[Event, ...]


def update(gate: QualityGate, status: RolloutStatus, result: ProbeResult | None, now: datetime) -> GateUpdate:
    """Judge this reconcile's probe (if any), add it to the gate's tally and say whether to abort or pause."""
    events: list[Event] = []
    measurement = None
    t = tally_of(status)
    if result is not None:
        measurement = judge(gate, result, now)
        t = analysis.tally(t, measurement)
        events.append(analysis.measurement_event(measurement))
    last = measurement or last_measurement(status)
    abort_reason = pause_message = None
    if t is not None and last is not None and not status.abort and status.outcome is None:
        v = verdict(gate, t)
        if v == "Abort":
            limit = gate.failure_limit
            abort_reason = f"QualityGateFailed: {last.message} (failureLimit {limit}); {last.resolved_query}"
            events.append(Event("Warning", "QualityGateFailed", abort_reason))
        elif v == "Inconclusive":
            pause_message = (f"quality gate inconclusive {t.inconclusive} times (inconclusiveLimit "
                             f"{gate.inconclusive_limit}): {last.message}; resume to try again")
    return GateUpdate(measurement, t, abort_reason, pause_message, tuple(events))


def waiting_note(gate: QualityGate, status: RolloutStatus) -> str:
    """Why the weight stays at 0 while the gate has not passed."""
    last = last_measurement(status)
    if last is None:
        return f"weight stays 0: quality gate ({gate.metric} on the golden set) not measured yet"
    return f"weight stays 0 until the quality gate passes; last probe: {last.message}"
