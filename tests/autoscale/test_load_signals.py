"""The runtime's load signals that the autoscaler reads (issue 13 item 4): busy seconds, streams, queue, drain."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from senseops_runtime.metrics import RuntimeMetrics


def _samples(metrics: RuntimeMetrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_load_signals_exist_before_any_work() -> None:
    samples = _samples(RuntimeMetrics())
    for name in (
        "senseops_active_streams",
        "senseops_decode_queue_depth",
        "senseops_draining",
        "senseops_decode_busy_seconds_total",
    ):
        assert samples[name] == 0.0, name


@pytest.mark.parametrize(
    ("calls", "busy"),
    [
        ([], 0.0),
        ([(["partial"], 0.25, 1.0)], 0.25),
        ([(["final", "partial"], 0.5, 3.0), (["upload"], 1.5, 10.0)], 2.0),
        # A batch counts once, however many jobs it carries: busy time is wall time of the worker.
        ([(["partial", "partial", "partial"], 0.3, 0.9)], 0.3),
        ([(["final"], 0.0, 0.0)], 0.0),
    ],
)
def test_busy_seconds_add_up_model_calls(calls: list[tuple[list[str], float, float]], busy: float) -> None:
    metrics = RuntimeMetrics()
    metrics.set_model("tiny", "v1", "torch", 0.1)
    for kinds, seconds, audio in calls:
        metrics.observe_decode(kinds, seconds, audio)
    assert _samples(metrics)["senseops_decode_busy_seconds_total"] == pytest.approx(busy)


@pytest.mark.parametrize(("workers", "busy"), [(1, 2.0), (2, 1.0), (4, 0.5)])
def test_busy_ratio_is_of_the_whole_worker_pool(workers: int, busy: float) -> None:
    """Two workers each busy 1 s out of 1 s: the pool is fully busy (ratio 1), not 2; one of two: 0.5."""
    metrics = RuntimeMetrics()
    metrics.set_model("tiny", "v1", "onnx-int8", 0.1)
    for _ in range(2):
        metrics.observe_decode(["partial"], 1.0, 2.0, workers=workers)
    assert _samples(metrics)["senseops_decode_busy_seconds_total"] == pytest.approx(busy)
