"""Samples traffic and health while the loop runs: the HTTPRoute's candidate weight (what the operator set),
the share of a load generator's requests through the gateway that the candidate answered (what clients saw:
``POST /api/transcribe`` answers name the model version), and the runtime pods' error ratio and p95 final
latency from the real Prometheus. The load generator also gives the candidate's analysis data at 5 %: a
few streams an hour would not."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from scripts.loop.timeline import Recorder, Sample

PROBE_WINDOW = 40  # the share is over the last this-many probe answers


def prom_scalar(url: str, query: str) -> float | None:
    """One instant query; None when there is no data, NaN, or Prometheus cannot answer."""
    try:
        reply = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5)
        result = reply.json()["data"]["result"]
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


def error_ratio_query(namespace: str) -> str:
    """Streams closed with an error code (not 1000 normal) over all stream closes, both sides together."""
    closes = f'senseops_ws_closes_total{{namespace="{namespace}"}}'
    bad = f'senseops_ws_closes_total{{namespace="{namespace}",code!="1000"}}'
    return f"(sum(rate({bad}[1m])) or vector(0)) / sum(rate({closes}[1m]))"


def p95_query(namespace: str) -> str:
    return (f'histogram_quantile(0.95, sum by (le) (rate(senseops_final_latency_seconds_bucket'
            f'{{namespace="{namespace}"}}[1m])))')


@dataclass
class Sampler:
    """A thread that samples every ``every_s`` seconds into the recorder until stopped."""

    recorder: Recorder
    t0: float
    gateway_url: str
    prometheus_url: str
    namespace: str
    weight: Callable[[], int | None]  # the candidate's weight on the route now (None: no candidate backend)
    candidate: Callable[[], str | None]  # the candidate model's name now
    token: str = ""  # a transcribe-scope token of the load generator (no consent: nothing of it is recorded)
    clip_wav: bytes = b""  # what the load generator sends
    every_s: float = 5.0
    answers: deque[str] = field(default_factory=lambda: deque(maxlen=PROBE_WINDOW))
    requests: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), what)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Sampler:
        for target in (self._probe, self._sample):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _probe(self) -> None:
        # One request at a time, a new connection each, so the gateway balances each one like a new client.
        while not self._stop.wait(0.2):
            self.requests += 1
            try:
                reply = httpx.post(f"{self.gateway_url}/api/transcribe", timeout=60,
                                   files={"file": ("clip.wav", self.clip_wav, "audio/wav")},
                                   headers={"Authorization": f"Bearer {self.token}"})
                if reply.status_code != 200:
                    self.errors.append((time.monotonic(), f"HTTP {reply.status_code}: {reply.text[:100]}"))
                    continue
                self.answers.append(str((reply.json().get("model") or {}).get("version", "?")))
            except (httpx.HTTPError, ValueError) as exc:
                self.errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"[:150]))

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            candidate, answers = self.candidate(), list(self.answers)
            share = (sum(a == candidate for a in answers) / len(answers)) if candidate and answers else None
            self.recorder.sample(Sample(
                t=round(time.monotonic() - self.t0, 1), candidate_weight=self.weight(),
                candidate_share=share if candidate else None,
                error_ratio=prom_scalar(self.prometheus_url, error_ratio_query(self.namespace)),
                p95_final_latency_s=prom_scalar(self.prometheus_url, p95_query(self.namespace))))
