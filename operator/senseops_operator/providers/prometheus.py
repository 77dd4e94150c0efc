"""Prometheus instant queries (`/api/v1/query`). Parsing the answer is pure; the HTTP call is thin."""

from __future__ import annotations

from typing import Any

import httpx

from senseops_operator.decide.analysis import MetricResult
from senseops_operator.models.rollout import AnalysisMetric
from senseops_operator.providers.base import ProviderError, QueryContext
from senseops_operator.providers.templates import resolved_query

TIMEOUT_SECONDS = 10.0


def parse_answer(body: Any) -> float | None:
    """The single value of a Prometheus query answer; None for no data; NaN stays NaN (the verdict makes it
    Inconclusive). Several series are an error: the query must aggregate to one number."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise ProviderError(f"Prometheus refused the query: {error or body!r}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result)
    if kind == "vector":
        if not result:
            return None
        if len(result) > 1:
            labels = [r.get("metric", {}) for r in result[:3]]
            raise ProviderError(f"query returned {len(result)} series (e.g. {labels}); aggregate it to one "
                                "number with sum(...) or similar")
        return _number(result[0].get("value"))
    raise ProviderError(f"unsupported result type {kind!r}; use an instant vector or scalar query")


def _number(sample: Any) -> float:
    try:
        return float(sample[1])  # [timestamp, "value"]; "NaN", "+Inf" parse too
    except (TypeError, ValueError, IndexError) as exc:
        raise ProviderError(f"unreadable sample {sample!r}") from exc


class PrometheusProvider:
    """Measures a metric by one instant query against `address`."""

    def __init__(self, address: str, client: httpx.Client | None = None) -> None:
        self.address = address.rstrip("/")
        self.client = client  # None: one short-lived client per measurement (nothing left open)

    def measure(self, metric: AnalysisMetric, context: QueryContext) -> MetricResult:
        query = resolved_query(metric, context)
        if self.client is not None:
            return self._measure(self.client, metric, query)
        with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
            return self._measure(client, metric, query)

    def _measure(self, client: httpx.Client, metric: AnalysisMetric, query: str) -> MetricResult:
        try:
            response = client.get(f"{self.address}/api/v1/query", params={"query": query})
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") \
                else None
            if body is None:
                raise ProviderError(f"HTTP {response.status_code} from {self.address}")
            value = parse_answer(body)
        except ProviderError as exc:
            return MetricResult(metric.name, query, error=str(exc))
        except httpx.HTTPError as exc:
            return MetricResult(metric.name, query, error=f"{type(exc).__name__}: {exc}")
        return MetricResult(metric.name, query, value=value)
