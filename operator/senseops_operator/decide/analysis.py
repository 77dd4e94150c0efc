"""Analysis verdicts: one provider answer → a Measurement; running tallies → what the rollout must do.

Rules (DESIGN §3, issue 10):
- a provider error is `Error`, never a failure: the metric may be fine, we just could not see it;
- an empty or NaN/infinite answer is `Inconclusive`, never a pass ("no data is never a pass");
- otherwise the value is compared with `successMin` / `successMax`.
The limits count *beyond*: `failureLimit: 0` aborts on the first failure, `failureLimit: 2` on the third.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from senseops_operator.decide.common import Event, timestamp
from senseops_operator.models.rollout import AnalysisMetric, Measurement, MeasurementPhase, MetricTally

AnalysisVerdict = Literal["Healthy", "Abort", "Inconclusive", "ProviderErrors"]


@dataclass(frozen=True)
class MetricResult:
    """What the handler got from the metric provider for one metric (no judgement yet)."""

    metric: str
    resolved_query: str
    value: float | None = None  # None: the query returned no series
    error: str | None = None  # set when the provider could not answer (network, HTTP 5xx, bad PromQL)


def threshold_text(metric: AnalysisMetric) -> str:
    """The pass rule in words, e.g. '<= 0.05' or '>= 0.9 and <= 1.1'."""
    parts = []
    if metric.success_min is not None:
        parts.append(f">= {metric.success_min:g}")
    if metric.success_max is not None:
        parts.append(f"<= {metric.success_max:g}")
    return " and ".join(parts)


def judge(metric: AnalysisMetric, result: MetricResult, now: datetime) -> Measurement:
    """Turn one provider answer into a Measurement with its verdict, threshold and resolved query."""
    threshold = threshold_text(metric)
    phase: MeasurementPhase
    value = result.value
    if result.error is not None:
        phase, message, value = "Error", f"provider error: {result.error}", None
    elif value is None or math.isnan(value) or math.isinf(value):
        phase = "Inconclusive"
        message = "query returned no data" if value is None else f"query returned {value} (not a number)"
        value = None  # NaN/inf cannot be stored in JSON
    else:
        too_low = metric.success_min is not None and value < metric.success_min
        too_high = metric.success_max is not None and value > metric.success_max
        phase = "Failed" if too_low or too_high else "Successful"
        verb = "breaches" if phase == "Failed" else "meets"
        message = f"{value:g} {verb} {threshold}"
    return Measurement(
        metric=metric.name,
        phase=phase,
        value=value,
        threshold=threshold,
        resolved_query=result.resolved_query,
        message=message,
        at=timestamp(now),
    )


def tally(old: MetricTally | None, measurement: Measurement) -> MetricTally:
    """Add one measurement to a metric's running counts."""
    t = old.model_copy() if old is not None else MetricTally(metric=measurement.metric)
    match measurement.phase:
        case "Successful":
            t.successful += 1
        case "Failed":
            t.failed += 1
        case "Inconclusive":
            t.inconclusive += 1
        case "Error":
            t.error += 1
    t.consecutive_errors = t.consecutive_errors + 1 if measurement.phase == "Error" else 0
    t.last_measured_at = measurement.at
    return t


def verdict(metric: AnalysisMetric, t: MetricTally) -> AnalysisVerdict:
    """What the counts so far mean for the rollout; a failure beyond the limit outranks everything else."""
    if t.failed > metric.failure_limit:
        return "Abort"
    if t.consecutive_errors > metric.consecutive_error_limit:
        return "ProviderErrors"
    if t.inconclusive > metric.inconclusive_limit:
        return "Inconclusive"
    return "Healthy"


def is_due(metric: AnalysisMetric, t: MetricTally | None, now: datetime, step_started: datetime | None = None) -> bool:
    """May the metric be measured now (see :func:`next_due`)?"""
    return now >= next_due(metric, t, now, step_started)


def next_due(metric: AnalysisMetric, t: MetricTally | None, now: datetime,
             step_started: datetime | None = None) -> datetime:
    """When the metric is measured next: its interval after the last measurement (now if never measured), and
    not before ``initialDelaySeconds`` after the current step started."""
    due = now if t is None or t.last_measured_at is None else (
        parse_time(t.last_measured_at) + timedelta(seconds=metric.interval_seconds))
    if step_started is not None and metric.initial_delay_seconds:
        due = max(due, step_started + timedelta(seconds=metric.initial_delay_seconds))
    return due


def measurement_event(m: Measurement) -> Event:
    """Every verdict is announced, with metric, value, threshold and the resolved query."""
    value = "no value" if m.value is None else f"{m.value:g}"
    return Event(
        type="Normal" if m.phase == "Successful" else "Warning",
        reason=f"Analysis{m.phase}",
        message=f"{m.metric}: {m.phase} ({m.message}); value {value}, threshold {m.threshold}, "
        f"query {m.resolved_query}",
    )


def describe(m: Measurement) -> str:
    """One line for status messages and abort reasons."""
    value = "no value" if m.value is None else f"{m.value:g}"
    return f"metric {m.metric} = {value} (threshold {m.threshold}; {m.message}); query: {m.resolved_query}"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
