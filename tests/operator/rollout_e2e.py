"""Helpers for the Rollout end-to-end test (test_rollout_e2e.py): manifests, a paced load generator that
records which model version answered each request, and a recorder of the Rollout's status over time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config

from tests.common.waiting import wait_until
from tests.procnode.workloads import runtime_deployment

ROLLOUT = "ro"
CANARY = f"{ROLLOUT}-canary"
TARGET = "asr"
MODEL_VERSION_HEADER = "X-SenseOps-Model-Version"  # senseops_runtime.app (not imported: it loads torch)
# Pods select on these; the version label is not in any selector, so the stable Deployment can move models.
SELECTOR = {"app.kubernetes.io/name": "senseops-runtime", "app.kubernetes.io/instance": TARGET}


def asr_model(ns: str, name: str, directory: Path, sha256: str) -> dict[str, Any]:
    """An ASRModel for a model directory on this machine (file://: the process node's pods see the host's
    files, and the operator verifies the same path)."""
    return {"apiVersion": "senseops.dev/v1alpha1", "kind": "ASRModel", "metadata": {"name": name, "namespace": ns},
            "spec": {"version": name, "languages": ["zh", "en"],
                     "artifact": {"uri": f"file://{directory}/", "sha256": sha256, "format": "funasr"}}}


def target(ns: str, model_dir: Path, sha256: str, fault_env: dict[str, str]) -> list[dict[str, Any]]:
    """Git's stable Deployment and Service: the real runtime on the process node, one replica, model v1."""
    deployment, service = runtime_deployment(ns, model_dir, replicas=1, name=TARGET, version="v1",
                                             model_sha256=sha256, extra_env=fault_env)
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    for e in env:  # the model as an ASRModel names it (the operator rewrites exactly these on promotion)
        if e["name"] == "SENSEOPS_MODEL_URI":
            e["value"] = f"file://{model_dir}/"
    deployment["spec"]["selector"] = {"matchLabels": dict(SELECTOR)}
    service["spec"]["selector"] = dict(SELECTOR)
    return [deployment, service]


@dataclass
class Load:
    """GETs through the proxy one after another at up to ``rate_per_s``; records (time, answering version, ok).
    The answering version is the runtime's X-SenseOps-Model-Version header."""

    port: int
    path: str = "/api/health"
    rate_per_s: float = 200.0
    results: list[tuple[float, str | None, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until("the load generator's first answer", lambda: len(self.results) > 0, timeout_s=15)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        period = 1.0 / self.rate_per_s
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as http:
            due = time.monotonic()
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    reply = http.get(self.path)
                    version = reply.headers.get(MODEL_VERSION_HEADER)
                    ok = reply.status_code == 200
                    if not ok:
                        self.errors.append(f"{version} HTTP {reply.status_code}: {reply.text[:80]}")
                    self.results.append((sent, version, ok))
                except httpx.HTTPError as err:
                    self.errors.append(f"{type(err).__name__}: {err}")
                    self.results.append((sent, None, False))
                due = max(due + period, time.monotonic() - 1.0)
                self._stop.wait(max(0.0, due - time.monotonic()))

    def failed(self, since: float = 0.0) -> int:
        return sum(1 for t, _, ok in self.results if t >= since and not ok)

    def share(self, version: str, skip: int, count: int, timeout_s: float = 120) -> tuple[float, int]:
        """Wait for ``skip`` + ``count`` more requests; the share (in %) of the last ``count`` that ``version``
        answered, and how many of them failed."""
        start = len(self.results)
        wait_until(f"{skip + count} more requests", lambda: len(self.results) >= start + skip + count,
                   timeout_s=timeout_s, interval_s=0.2)
        window = self.results[start + skip:start + skip + count]
        return 100.0 * sum(1 for _, v, ok in window if ok and v == version) / len(window), \
            sum(1 for _, _, ok in window if not ok)


@dataclass
class StatusRecorder:
    """Reads the Rollout's status every ``interval_s`` through the API (not kubectl: cheaper on two cores)
    and keeps every change of (step, actual weight, phase, abort, outcome) with its time."""

    kubeconfig: Path
    namespace: str
    interval_s: float = 0.25
    changes: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> StatusRecorder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(self.kubeconfig)))
        last: tuple[Any, ...] | None = None
        while not self._stop.wait(self.interval_s):
            last = self._look(api, last)
        # One last look after the stop: the caller has just seen a state through its own read and the
        # recorder, a poll behind, must hold it too (CI once missed the final weight 0 of an abort).
        self._look(api, last)

    def _look(self, api: Any, last: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        """Read the status once; record it if it changed. Returns the key of the newest recorded state."""
        try:
            obj = api.get_namespaced_custom_object("senseops.dev", "v1alpha1", self.namespace, "rollouts", ROLLOUT)
        except Exception:  # not created yet, or the API is busy: look again
            return last
        s = obj.get("status") or {}
        key = (s.get("currentStepIndex"), s.get("actualWeight"), s.get("phase"), s.get("abort"),
               s.get("outcome"), tuple(p.get("reason") for p in s.get("pauseConditions") or []))
        if key != last:
            self.changes.append((time.monotonic(), s))
        return key

    def weights(self) -> list[int]:
        """Confirmed weights in the order seen, consecutive repeats dropped."""
        seen: list[int] = []
        for _, s in self.changes:
            w = s.get("actualWeight")
            if w is not None and (not seen or seen[-1] != w):
                seen.append(w)
        return seen

    def steps(self) -> list[int]:
        seen: list[int] = []
        for _, s in self.changes:
            i = s.get("currentStepIndex")
            if i is not None and (not seen or seen[-1] != i):
                seen.append(i)
        return seen

    def first(self, predicate: Callable[[dict[str, Any]], bool]) -> float | None:
        return next((t for t, s in self.changes if predicate(s)), None)

    def wait_first(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 10.0) -> float | None:
        """:meth:`first`, once the recorder has caught up: a caller that just saw the state through its own
        read can be a poll ahead of the recorder."""
        deadline = time.monotonic() + timeout_s
        while (found := self.first(predicate)) is None and time.monotonic() < deadline:
            time.sleep(self.interval_s)
        return found
