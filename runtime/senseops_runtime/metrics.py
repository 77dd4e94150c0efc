"""Prometheus metrics of one server (own registry, so several apps can live in one test process).

Every model-dependent series carries ``model`` and ``version`` labels so a canary's numbers can be told
apart from the stable model's when both scrape into one Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Fine below one second: partial/final latency targets are a few hundred milliseconds.
LATENCY_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class RuntimeMetrics:
    """The server's metric families; label values for model name/version are fixed at load time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.model_name = "none"
        self.model_version = "none"
        self.requests = Counter(
            "senseops_http_requests_total",
            "HTTP requests by route and status code",
            ["route", "method", "code"],
            registry=r,
        )
        self.errors = Counter(
            "senseops_errors_total",
            "Errors answered to clients, by surface and code",
            ["surface", "code"],
            registry=r,
        )
        self.ws_closes = Counter("senseops_ws_closes_total", "WebSocket closes by code", ["code"], registry=r)
        self.active_streams = Gauge("senseops_active_streams", "Open WebSocket streams", registry=r)
        # Not errors: a draining replica hands its clients to another one (see senseops_runtime.drain).
        self.draining = Gauge("senseops_draining", "1 while the process drains for shutdown (SIGTERM)", registry=r)
        self.drain_refusals = Counter(
            "senseops_drain_refusals_total", "New requests (http) and streams (ws) refused while draining", ["surface"],
            registry=r,
        )
        self.audio_seconds = Counter(
            "senseops_audio_seconds_total",
            "Audio seconds received",
            ["model", "version", "surface"],
            registry=r,
        )
        self.queue_depth = Gauge("senseops_decode_queue_depth", "Decode jobs waiting", registry=r)
        # A load signal for autoscaling: rate() of it is the share of wall time the decode workers are busy
        # (0..1: each call counts its seconds divided by the number of workers), whatever the mix of partials,
        # finals and uploads.
        self.decode_busy = Counter(
            "senseops_decode_busy_seconds_total",
            "Seconds the decode workers spent in model calls, divided by their number; rate() is the busy ratio",
            registry=r,
        )
        self.decode_seconds = Histogram(
            "senseops_decode_seconds",
            "Model call duration by job kind",
            ["model", "version", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.partial_latency = Histogram(
            "senseops_partial_latency_seconds",
            "Partial requested -> partial sent",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.final_latency = Histogram(
            "senseops_final_latency_seconds",
            "Segment end detected -> final sent",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rtf = Histogram(
            "senseops_rtf",
            "Decode seconds per audio second, per model call",
            ["model", "version"],
            buckets=RTF_BUCKETS,
            registry=r,
        )
        self.model_load_seconds = Gauge(
            "senseops_model_load_seconds", "Time to load and warm the model", ["model", "version"], registry=r
        )
        self.model_info = Gauge(
            "senseops_model_info", "The loaded model (value 1)", ["model", "version", "backend"], registry=r
        )
        self.recordings = Counter(
            "senseops_recordings_total", "Segments handed to the spool (spooled, failed, replay_skipped)", ["result"],
            registry=r,
        )
        self.redactions = Counter(
            "senseops_redactions_total", "Personal data masked in stored transcripts, by rule", ["rule"], registry=r
        )

    def set_model(self, name: str, version: str, backend: str, load_seconds: float) -> None:
        """Record the loaded model; later observations are labelled with it."""
        self.model_name, self.model_version = name, version
        self.model_info.labels(name, version, backend).set(1)
        self.model_load_seconds.labels(name, version).set(load_seconds)
        # Create the labelled series now so dashboards and alerts see zeros, not "no data".
        for histogram in (self.partial_latency, self.final_latency, self.rtf):
            histogram.labels(name, version)
        for kind in ("final", "upload", "partial"):
            self.decode_seconds.labels(name, version, kind)
        for surface in ("stream", "upload"):
            self.audio_seconds.labels(name, version, surface)

    @property
    def model_labels(self) -> tuple[str, str]:
        return self.model_name, self.model_version

    def observe_decode(self, kinds: list[str], seconds: float, audio_seconds: float, workers: int = 1) -> None:
        """One model call of a batch of jobs (on one of ``workers`` decode workers)."""
        self.decode_busy.inc(max(0.0, seconds) / max(1, workers))
        for kind in set(kinds):
            self.decode_seconds.labels(*self.model_labels, kind).observe(seconds)
        if audio_seconds > 0:
            self.rtf.labels(*self.model_labels).observe(seconds / audio_seconds)

    def count_redactions(self, counts: dict[str, int]) -> None:
        """Add one recording's masked matches per rule (called from the recorder's thread)."""
        for rule, n in counts.items():
            self.redactions.labels(rule).inc(n)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
