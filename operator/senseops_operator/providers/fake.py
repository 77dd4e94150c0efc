"""A provider that answers from a table (unit tests; no network)."""

from __future__ import annotations

from collections.abc import Mapping

from senseops_operator.decide.analysis import MetricResult
from senseops_operator.models.rollout import AnalysisMetric
from senseops_operator.providers.base import QueryContext
from senseops_operator.providers.templates import resolved_query


class FakeProvider:
    """Answers `values[metric name]`; a string value is returned as a provider error."""

    def __init__(self, values: Mapping[str, float | str | None]) -> None:
        self.values = dict(values)
        self.queries: list[str] = []

    def measure(self, metric: AnalysisMetric, context: QueryContext) -> MetricResult:
        query = resolved_query(metric, context)
        self.queries.append(query)
        value = self.values.get(metric.name)
        if isinstance(value, str):
            return MetricResult(metric.name, query, error=value)
        return MetricResult(metric.name, query, value=value)
