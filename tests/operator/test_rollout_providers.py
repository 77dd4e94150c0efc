"""Metric providers: query templating and answer parsing (pure tables), then a real Prometheus on loopback."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from senseops_operator.decide.analysis import judge
from senseops_operator.models.rollout import AnalysisMetric
from senseops_operator.providers import ProviderError, QueryContext, provider_for
from senseops_operator.providers.fake import FakeProvider
from senseops_operator.providers.prometheus import PrometheusProvider, parse_answer
from senseops_operator.providers.templates import TEMPLATES, resolve, resolved_query
from tests.common.waiting import wait_until
from tests.servers._proc import free_port
from tests.servers.prometheus import PrometheusServer, PrometheusSettings, StaticTarget

CTX = QueryContext(candidate="v2", stable="v1", namespace="asr")


def metric(address: str = "http://127.0.0.1:9", **prom: Any) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": "m", "successMax": 0.05, "intervalSeconds": 10,
                                          "provider": {"prometheus": {"address": address, **prom}}})


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("all variables", 'x{v="{{candidate}}",s="{{stable}}",ns="{{namespace}}"}[{{window}}]',
         'x{v="v2",s="v1",ns="asr"}[1m]'),
        ("spaces inside braces", "x{v='{{ candidate }}'}", "x{v='v2'}"),
        ("nothing to substitute", "vector(1)", "vector(1)"),
    ],
)
def test_resolve(name: str, text: str, expected: str) -> None:
    assert resolve(text, CTX) == expected


def test_unknown_variable_is_an_error_not_a_query_that_matches_nothing() -> None:
    with pytest.raises(ValueError, match=r"unknown query variable \{\{canary\}\}"):
        resolve('x{v="{{canary}}"}', CTX)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_resolves_for_both_sides(template: str) -> None:
    q = resolved_query(metric(template=template, window="30s"), CTX)
    assert "{{" not in q and 'app_kubernetes_io_version="v2"' in q and 'namespace="asr"' in q and "[30s]" in q
    assert ('app_kubernetes_io_version="v1"' in q) == template.endswith("-vs-stable")


def test_query_and_template_are_exclusive_in_the_api() -> None:
    crd = (Path(__file__).parents[2] / "crds" / "rollouts.senseops.dev.yaml").read_text()
    assert "has(self.query) != has(self.template)" in crd


def vector(*values: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {"i": str(i)}, "value": [1.0, v]}
                                                     for i, v in enumerate(values)]}}


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("one sample", vector("0.25"), 0.25),
        ("no series is no data", vector(), None),
        ("scalar", {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}, 3.0),
        ("NaN stays NaN", vector("NaN"), math.nan),
        ("+Inf", vector("+Inf"), math.inf),
    ],
)
def test_parse_answer(name: str, body: dict[str, Any], expected: float | None) -> None:
    got = parse_answer(body)
    if expected is not None and math.isnan(expected):
        assert got is not None and math.isnan(got)
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("several series", vector("1", "2"), "returned 2 series"),
        ("error status", {"status": "error", "error": "parse error at char 3"}, "parse error at char 3"),
        ("matrix", {"status": "success", "data": {"resultType": "matrix", "result": []}}, "unsupported result"),
        ("garbage", ["x"], "refused"),
    ],
)
def test_parse_answer_errors(name: str, body: Any, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        parse_answer(body)


def test_fake_provider_records_resolved_queries() -> None:
    fake = FakeProvider({"m": 0.5})
    m = metric(query='x{v="{{candidate}}"}')
    assert fake.measure(m, CTX).value == 0.5 and fake.queries == ['x{v="v2"}']
    assert FakeProvider({"m": "down"}).measure(m, CTX).error == "down"


# ---- a real Prometheus scraping a loopback exporter -----------------------------------------------------


@pytest.fixture(scope="module")
def exporter() -> Iterator[tuple[str, Gauge, Counter]]:
    registry = CollectorRegistry()
    gauge = Gauge("senseops_probe_value", "test value", registry=registry)
    requests = Counter("senseops_http_requests", "requests", ["route", "method", "code"], registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def traffic() -> None:  # 9 good answers for every 5xx: error ratio 0.1
        while not stop.wait(0.05):
            requests.labels("/api/transcribe", "POST", "200").inc(9)
            requests.labels("/api/transcribe", "POST", "500").inc(1)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    yield f"127.0.0.1:{port}", gauge, requests
    stop.set()
    worker.join()
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def prometheus(exporter: tuple[str, Gauge, Counter], tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        PrometheusServer]:
    target = StaticTarget("runtime", exporter[0], labels={"namespace": "asr", "app_kubernetes_io_version": "v2"})
    settings = PrometheusSettings(scrape_interval_s=1.0, static_targets=(target,))
    server = PrometheusServer(Path(tmp_path_factory.mktemp("prom")), settings).start()
    yield server
    server.stop()


def test_real_prometheus_value_no_data_nan_bad_query_and_down(
        prometheus: PrometheusServer, exporter: tuple[str, Gauge, Counter]) -> None:
    exporter[1].set(0.02)
    provider = PrometheusProvider(prometheus.url)
    good = metric(prometheus.url, query='max(senseops_probe_value{app_kubernetes_io_version="{{candidate}}"})')
    result = wait_until("the probe value in Prometheus",
                        lambda: (r := provider.measure(good, CTX)).value is not None and r, timeout_s=30)
    assert result.value == 0.02
    assert result.resolved_query == 'max(senseops_probe_value{app_kubernetes_io_version="v2"})'
    assert judge(good, result, datetime.now(UTC)).phase == "Successful"
    # the stable side has no series: no data, which judges Inconclusive
    empty = provider.measure(metric(prometheus.url, query='max(senseops_probe_value{app_kubernetes_io_version='
                                                          '"{{stable}}"})'), CTX)
    assert empty.value is None and empty.error is None
    nan = provider.measure(metric(prometheus.url, query="scalar(vector(0)) / 0 * 0"), CTX)
    assert nan.value is not None and math.isnan(nan.value)
    bad = provider.measure(metric(prometheus.url, query="sum(rate(x[1m]"), CTX)
    assert bad.error is not None and "parse error" in bad.error
    down = PrometheusProvider(f"http://127.0.0.1:{free_port()}").measure(good, CTX)
    assert down.error is not None and down.value is None


def test_real_prometheus_error_ratio_template(prometheus: PrometheusServer) -> None:
    m = metric(prometheus.url, template="error-ratio", window="5s")
    provider = provider_for(m)
    result = wait_until("an error ratio from the template",
                        lambda: (r := provider.measure(m, CTX)).value is not None and r, timeout_s=30)
    assert result.value == pytest.approx(0.1, abs=0.02)
    assert "senseops_http_requests_total" in result.resolved_query



def test_real_prometheus_error_ratio_is_zero_for_a_side_without_errors(prometheus: PrometheusServer) -> None:
    """A healthy side has no 5xx series among client requests: the template gives 0 (a pass), not no data
    (which held a healthy candidate as Inconclusive), and the readiness probe's 503s while the model loaded
    do not count; a side with no requests still gives no data."""
    registry = CollectorRegistry()
    requests = Counter("senseops_http_requests", "requests", ["route", "method", "code"], registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def traffic() -> None:  # clients get only 200s; the readiness probe saw 503s while the model loaded
        while not stop.wait(0.05):
            requests.labels("/api/health", "GET", "200").inc(5)
            requests.labels("/readyz", "GET", "503").inc(1)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    before = prometheus.settings.static_targets
    healthy = StaticTarget("runtime-healthy", f"127.0.0.1:{port}",
                           labels={"namespace": "ok", "app_kubernetes_io_version": "v3"})
    prometheus.reconfigure(static_targets=(*before, healthy))
    try:
        m = metric(prometheus.url, template="error-ratio", window="5s")
        provider = provider_for(m)
        context = QueryContext(candidate="v3", stable="v1", namespace="ok")
        result = wait_until("a healthy error ratio from the template",
                            lambda: (r := provider.measure(m, context)).value is not None and r, timeout_s=30)
        assert result.error is None and result.value == 0.0, result
        assert judge(m, result, datetime.now(UTC)).phase == "Successful"
        nothing = provider.measure(m, QueryContext(candidate="v9", stable="v1", namespace="ok"))
        assert nothing.error is None and nothing.value is None
    finally:
        prometheus.reconfigure(static_targets=before)
        stop.set()
        worker.join()
        server.shutdown()
        thread.join()
