"""Table tests for analysis verdicts: one provider answer → Measurement; tallies → what the rollout does."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from senseops_operator.decide.analysis import (
    MetricResult,
    is_due,
    judge,
    measurement_event,
    next_due,
    tally,
    threshold_text,
    verdict,
)
from senseops_operator.models.rollout import AnalysisMetric, MetricTally

NOW = datetime(2026, 11, 29, 7, 0, 0, tzinfo=UTC)
PROM = {"prometheus": {"address": "http://prom:9090", "query": "q"}}


def metric(**kw: object) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": "m", "provider": PROM, **kw})


MAX = metric(successMax=0.05)
MIN = metric(successMin=0.9)
BAND = metric(successMin=0.9, successMax=1.1)


@pytest.mark.parametrize(
    ("name", "m", "result", "phase", "value"),
    [
        ("under the max passes", MAX, MetricResult("m", "q", value=0.01), "Successful", 0.01),
        ("exactly the max passes", MAX, MetricResult("m", "q", value=0.05), "Successful", 0.05),
        ("over the max fails", MAX, MetricResult("m", "q", value=0.06), "Failed", 0.06),
        ("under the min fails", MIN, MetricResult("m", "q", value=0.5), "Failed", 0.5),
        ("inside a band passes", BAND, MetricResult("m", "q", value=1.0), "Successful", 1.0),
        ("above a band fails", BAND, MetricResult("m", "q", value=1.2), "Failed", 1.2),
        ("empty result is inconclusive, never a pass", MAX, MetricResult("m", "q", value=None), "Inconclusive", None),
        ("NaN is inconclusive, never a pass", MAX, MetricResult("m", "q", value=math.nan), "Inconclusive", None),
        ("+Inf is inconclusive", MIN, MetricResult("m", "q", value=math.inf), "Inconclusive", None),
        ("provider error is an Error, not a failure", MAX, MetricResult("m", "q", error="timeout"), "Error", None),
        ("error wins over a stale value", MAX, MetricResult("m", "q", value=0.01, error="503"), "Error", None),
    ],
)
def test_judge(name: str, m: AnalysisMetric, result: MetricResult, phase: str, value: float | None) -> None:
    out = judge(m, result, NOW)
    assert (out.phase, out.value) == (phase, value)
    assert out.resolved_query == "q" and out.threshold == threshold_text(m) and out.at == "2026-11-29T07:00:00Z"


def test_threshold_text() -> None:
    texts = (threshold_text(MAX), threshold_text(MIN), threshold_text(BAND))
    assert texts == ("<= 0.05", ">= 0.9", ">= 0.9 and <= 1.1")


def test_event_carries_metric_value_threshold_and_query() -> None:
    e = measurement_event(judge(MAX, MetricResult("m", "sum(rate(x{v=\"b\"}[1m]))", value=0.2), NOW))
    assert e.type == "Warning" and e.reason == "AnalysisFailed"
    assert all(s in e.message for s in ("m:", "0.2", "<= 0.05", 'sum(rate(x{v="b"}[1m]))'))
    ok = measurement_event(judge(MAX, MetricResult("m", "q", value=0.0), NOW))
    assert ok.type == "Normal" and ok.reason == "AnalysisSuccessful"


def run(m: AnalysisMetric, phases: list[str]) -> str:
    """Feed a sequence of results through tally and return the final verdict."""
    results = {"S": MetricResult("m", "q", value=0.0), "F": MetricResult("m", "q", value=99.0),
               "I": MetricResult("m", "q", value=None), "E": MetricResult("m", "q", error="down")}
    t: MetricTally | None = None
    for p in phases:
        t = tally(t, judge(m, results[p], NOW))
    assert t is not None
    return verdict(m, t)


@pytest.mark.parametrize(
    ("name", "limits", "sequence", "expected"),
    [
        ("all good", {}, "SSSS", "Healthy"),
        ("first failure aborts with failureLimit 0", {}, "SF", "Abort"),
        ("failures within the limit", {"failureLimit": 2}, "FSFS", "Healthy"),
        ("failure beyond the limit", {"failureLimit": 2}, "FSFSF", "Abort"),
        ("failures are counted in total, not in a row", {"failureLimit": 1}, "FSSSF", "Abort"),
        ("first inconclusive pauses with inconclusiveLimit 0", {}, "SI", "Inconclusive"),
        ("inconclusive within the limit", {"inconclusiveLimit": 2}, "ISI", "Healthy"),
        ("inconclusive beyond the limit", {"inconclusiveLimit": 2}, "ISISI", "Inconclusive"),
        ("errors up to the limit are tolerated", {"consecutiveErrorLimit": 2}, "EE", "Healthy"),
        ("errors beyond the limit", {"consecutiveErrorLimit": 2}, "EEE", "ProviderErrors"),
        ("an answer resets consecutive errors", {"consecutiveErrorLimit": 2}, "EESEE", "Healthy"),
        ("errors never count as failures", {"consecutiveErrorLimit": 100}, "EEEEEE", "Healthy"),
        ("failure outranks provider errors", {"consecutiveErrorLimit": 0}, "EF", "Abort"),
    ],
)
def test_verdict(name: str, limits: dict[str, int], sequence: str, expected: str) -> None:
    assert run(metric(successMax=1.0, **limits), list(sequence)) == expected


def test_tally_counts_and_last_time() -> None:
    t = tally(None, judge(MAX, MetricResult("m", "q", error="x"), NOW))
    t = tally(t, judge(MAX, MetricResult("m", "q", error="x"), NOW + timedelta(seconds=5)))
    assert (t.error, t.consecutive_errors, t.last_measured_at) == (2, 2, "2026-11-29T07:00:05Z")


@pytest.mark.parametrize(
    ("name", "last", "age_s", "due"),
    [("never measured", None, 0, True), ("interval not over", "2026-11-29T07:00:00Z", 59, False),
     ("interval over", "2026-11-29T07:00:00Z", 60, True)],
)
def test_is_due(name: str, last: str | None, age_s: int, due: bool) -> None:
    t = None if last is None else MetricTally(metric="m", last_measured_at=last)
    assert is_due(metric(successMax=1.0, intervalSeconds=60), t, NOW + timedelta(seconds=age_s)) is due


STEP = datetime(2026, 11, 29, 6, 59, 30, tzinfo=UTC)  # the current step started 30 s before NOW


@pytest.mark.parametrize(
    ("name", "delay", "last", "age_s", "due"),
    [
        ("no delay: never measured is due at once", 0, None, 0, True),
        ("delay not over: not due though never measured", 60, None, 29, False),
        ("delay over: due", 60, None, 30, True),
        ("interval over but delay not: the delay wins", 120, "2026-11-29T06:58:00Z", 60, False),
        ("delay over but interval not: the interval wins", 10, "2026-11-29T07:00:00Z", 59, False),
        ("both over: due", 10, "2026-11-29T07:00:00Z", 60, True),
    ],
)
def test_initial_delay_counts_from_the_step_start(name: str, delay: int, last: str | None, age_s: int,
                                                  due: bool) -> None:
    m = metric(successMax=1.0, intervalSeconds=60, initialDelaySeconds=delay)
    t = None if last is None else MetricTally(metric="m", last_measured_at=last)
    now = NOW + timedelta(seconds=age_s)
    assert is_due(m, t, now, STEP) is due
    interval_due = now if last is None else datetime.fromisoformat(last) + timedelta(seconds=60)
    expected = max(interval_due, STEP + timedelta(seconds=delay))
    assert next_due(m, t, now, STEP) == expected
    assert is_due(m, t, now) is (now >= interval_due)  # without a step start only the interval counts


def test_initial_delay_is_validated() -> None:
    with pytest.raises(ValueError, match="initialDelaySeconds"):
        metric(successMax=1.0, initialDelaySeconds=-1)
    with pytest.raises(ValueError, match="initialDelaySeconds"):
        metric(successMax=1.0, initialDelaySeconds=3601)
