"""The metric-provider interface and what a query needs to know about the rollout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from senseops_operator.decide.analysis import MetricResult
from senseops_operator.models.rollout import AnalysisMetric


class ProviderError(RuntimeError):
    """The provider could not answer (unreachable, HTTP error, bad query). Never a failed measurement."""


@dataclass(frozen=True)
class QueryContext:
    """Values substituted into query templates."""

    candidate: str  # the candidate's version label value
    stable: str
    namespace: str


class MetricProvider(Protocol):
    def measure(self, metric: AnalysisMetric, context: QueryContext) -> MetricResult:
        """Run the metric's query; a provider failure is returned as `MetricResult.error`, not raised."""
        ...
