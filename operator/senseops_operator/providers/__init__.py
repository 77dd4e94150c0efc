"""Metric providers for Rollout analysis: one small Protocol (`base.MetricProvider`), one module each.

`provider_for(metric)` is the one factory switch; `fake.FakeProvider` answers from a table for tests.
"""

from __future__ import annotations

from senseops_operator.models.rollout import AnalysisMetric
from senseops_operator.providers.base import MetricProvider, ProviderError, QueryContext
from senseops_operator.providers.prometheus import PrometheusProvider


def provider_for(metric: AnalysisMetric) -> MetricProvider:
    """The provider a metric names (only Prometheus today)."""
    return PrometheusProvider(metric.provider.prometheus.address)


__all__ = ["MetricProvider", "PrometheusProvider", "ProviderError", "QueryContext", "provider_for"]
