"""Query text: `{{variable}}` substitution (pure) and built-in templates over the runtime's own metrics.

The runtime exports `senseops_http_requests_total`, `senseops_final_latency_seconds` and `senseops_rtf`
(runtime/senseops_runtime/metrics.py); Prometheus' pod discovery copies each pod's labels onto its series,
so `app_kubernetes_io_version` (the pod label `app.kubernetes.io/version`, set to the model name on
candidate and stable pods) tells the two sides apart. A "-vs-stable" template is candidate minus stable
(error ratio) or candidate / stable (latency, RTF): use `successMax` 0.01 for "at most one point worse" or
1.2 for "at most 20 % slower". No traffic on either side gives NaN or no data: Inconclusive, never a pass.
"""

from __future__ import annotations

import re

from senseops_operator.models.rollout import AnalysisMetric, MetricTemplate
from senseops_operator.providers.base import QueryContext

VERSION_LABEL = "app.kubernetes.io/version"
_PROM_VERSION_LABEL = "app_kubernetes_io_version"


def _sel(side: str, extra: str = "") -> str:
    """A label selector for one side; the {{...}} variables are filled in by `resolve`."""
    return 'namespace="{{namespace}}",' + _PROM_VERSION_LABEL + '="{{' + side + '}}"' + extra


# Probes and scrapes are not client traffic: a pod answers /readyz 503 while its model loads, which must
# not count against a candidate that then serves every client request.
NOT_CLIENT_ROUTES = "/healthz|/readyz|/metrics"


def _error_ratio(side: str) -> str:
    served = f',route!~"{NOT_CLIENT_ROUTES}"'
    errors = "senseops_http_requests_total{" + _sel(side, served + ',code=~"5.."') + "}[{{window}}]"
    total = "senseops_http_requests_total{" + _sel(side, served) + "}[{{window}}]"
    # A side that never answered a 5xx has no error series at all: that is a ratio of 0, not "no data"
    # (which would hold a healthy candidate as Inconclusive). No traffic (no total) still gives no data.
    return f"((sum(rate({errors})) or vector(0)) / sum(rate({total})))"


def _p95(family: str, side: str) -> str:
    return "histogram_quantile(0.95, sum by (le) (rate(" + family + "_bucket{" + _sel(side) + "}[{{window}}])))"


TEMPLATES: dict[MetricTemplate, str] = {
    "error-ratio": _error_ratio("candidate"),
    "error-ratio-vs-stable": f"{_error_ratio('candidate')} - {_error_ratio('stable')}",
    "p95-final-latency": _p95("senseops_final_latency_seconds", "candidate"),
    "p95-final-latency-vs-stable": f"{_p95('senseops_final_latency_seconds', 'candidate')}"
    f" / {_p95('senseops_final_latency_seconds', 'stable')}",
    "rtf-p95": _p95("senseops_rtf", "candidate"),
    "rtf-p95-vs-stable": f"{_p95('senseops_rtf', 'candidate')} / {_p95('senseops_rtf', 'stable')}",
}

_VARIABLE = re.compile(r"\{\{\s*([a-z]+)\s*\}\}")


def query_text(metric: AnalysisMetric) -> str:
    """The metric's query before substitution: its own PromQL or the named built-in template."""
    prom = metric.provider.prometheus
    if prom.template is not None:
        return TEMPLATES[prom.template]
    if prom.query is None:
        raise ValueError(f"metric {metric.name}: set provider.prometheus.query or template")
    return prom.query


def resolve(text: str, context: QueryContext, window: str = "1m") -> str:
    """Substitute {{candidate}}, {{stable}}, {{namespace}}, {{window}}; an unknown variable is an error
    (a typo must not silently become a query that matches nothing, which would read as "no data")."""
    values = {"candidate": context.candidate, "stable": context.stable, "namespace": context.namespace,
              "window": window}

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"unknown query variable {{{{{name}}}}}; use candidate, stable, namespace or window")
        return values[name]

    return _VARIABLE.sub(one, text)


def resolved_query(metric: AnalysisMetric, context: QueryContext) -> str:
    return resolve(query_text(metric), context, metric.provider.prometheus.window)
