"""The Rollout end to end with two real runtime versions behind the real proxy (issue 10, "Must show").

Everything is real except the kubelet: the control plane, the operator process, runtime pods serving the
tiny model on the process node (the stable Deployment is Git's; the candidate Deployment is the one the
operator makes), HAProxy programmed from the HTTPRoute by the Gateway API stand-in, and Prometheus scraping
the pods. v1, v2, v3 are the same tiny model published as three ASRModels; the runtime labels its metrics
and answers with the ASRModel name as its version (``X-SenseOps-Model-Version``), which is how the load
generator tells the two sides apart. The load is ``GET /api/health`` (cheap on two cores; it goes through
the same proxy, Services and pods as transcription, and counts in the runtime's request metrics that the
built-in ``error-ratio`` template reads).

The tests share one namespace, stable Deployment, gateway and operator (module scope) and run in order:
each starts from the model the previous one left stable and deletes its Rollout at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from senseops_cli.rollout import main as rollout_cli
from senseops_common.storage import local_directory_manifest
from senseops_operator.models.rollout import AnalysisMetric
from senseops_operator.providers import QueryContext
from senseops_operator.providers.templates import resolved_query
from tests.common.waiting import wait_until
from tests.controlplane.cluster import DEFAULT_ROOT
from tests.controlplane.fixtures import ClusterHandle
from tests.gateway.conftest import GATEWAY_CLASS, GatewayDataplane, gateway_crds, gateway_dataplane  # noqa: F401
from tests.gateway.helpers import apply, gateway, gateway_port, http_route
from tests.operator.operator_process import OperatorProcess
from tests.operator.rollout_e2e import CANARY, ROLLOUT, TARGET, Load, StatusRecorder, asr_model, target
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.workloads import jwt_secret, ready_endpoints
from tests.servers.prometheus import PrometheusServer
from tests.testmodel import ensure_tiny_model

# Runtime pods load the model on two shared cores: the first test also pays for the stable pod and, alone, the
# session's control plane, so the suite default of 900 s per test is too short here.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1500)]
ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 400.0  # a runtime pod loads and warms the model; two busy cores make that slow
FAULTY = "v-faulty"  # the model version Git's template plants errors for (test-only runtime switch)
FAULT_ENV = {"SENSEOPS_FAULT_ERROR_RATIO": "0.5", "SENSEOPS_FAULT_MODEL_VERSIONS": FAULTY}
INTERVAL_S = 10  # the analysis interval (the API's minimum)
THRESHOLD = 0.05  # error ratio a candidate may have
SPLIT_REQUESTS = 1000  # per weight step
SETTLE_REQUESTS = 500  # HAProxy's dynamic round-robin catches up for a few hundred requests after a change
TOLERANCE_POINTS = 3.0


@dataclass
class Stage:
    cluster: ClusterHandle
    ns: str
    operator: OperatorProcess
    port: int
    prometheus: PrometheusServer
    model_dir: Path
    sha256: str
    scratch: Path

    def status(self) -> dict[str, Any]:
        return self.cluster.get_json("rollout", ROLLOUT, "-n", self.ns).get("status") or {}

    def wait(self, what: str, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = READY_TIMEOUT_S,
             ) -> dict[str, Any]:
        try:
            return wait_until(what, lambda: s if predicate(s := self.status()) else None, timeout_s=timeout_s,
                              interval_s=0.5)
        except AssertionError as err:
            raise AssertionError(f"{err}\nstatus: {json.dumps(self.status(), indent=1)}\n"
                                 f"operator log:\n{self.operator.log_tail(30)}") from None

    def patch_status(self, fields: dict[str, Any]) -> None:
        """What the CLI verbs do: a status patch (spec stays as Git wrote it)."""
        self.cluster.kubectl("patch", "rollout", ROLLOUT, "-n", self.ns, "--subresource=status", "--type=merge",
                             "-p", json.dumps({"status": fields}))

    def stable_version(self) -> str:
        deployment = self.cluster.get_json("deployment", TARGET, "-n", self.ns)
        return str(deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"])

    def events(self) -> list[dict[str, Any]]:
        uid = self.cluster.get_json("rollout", ROLLOUT, "-n", self.ns)["metadata"]["uid"]
        items: list[dict[str, Any]] = self.cluster.get_json(
            "events", "-n", self.ns, "--field-selector", f"involvedObject.uid={uid}")["items"]
        return items

    def kill_operator(self) -> None:
        """SIGKILL (no clean shutdown) and start again."""
        proc = self.operator.proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.operator.start()


def error_ratio_metric(prometheus_url: str) -> dict[str, Any]:
    # inconclusiveLimit 3: right after the weight rises the candidate has no client requests in Prometheus
    # yet (no data: Inconclusive, never a pass); a few such looks are expected, not a reason to hold.
    return {"name": "error-ratio", "successMax": THRESHOLD, "intervalSeconds": INTERVAL_S, "inconclusiveLimit": 3,
            "provider": {"prometheus": {"address": prometheus_url, "template": "error-ratio", "window": "30s"}}}


def rollout(stage: Stage, stable: str, candidate: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "senseops.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": ROLLOUT, "namespace": stage.ns},
            "spec": {"target": {"deployment": TARGET, "service": TARGET, "port": 80},
                     "stableModel": {"name": stable}, "candidateModel": {"name": candidate}, "steps": steps,
                     "trafficRouting": {"gatewayAPI": {"httpRoute": TARGET}},
                     "analysis": {"metrics": [error_ratio_metric(stage.prometheus.url)]}, **spec}}


def paused_by_step(s: dict[str, Any]) -> bool:
    return any(p.get("reason") == "PausedByStep" for p in s.get("pauseConditions") or [])


def holding_at(weight: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s.get("actualWeight") == weight and paused_by_step(s)


@pytest.fixture(scope="module")
def stage(local_cluster: ClusterHandle, process_node: ProcessNodeHandle, gateway_dataplane: GatewayDataplane,  # noqa: F811
          prometheus_server: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    cluster = local_cluster
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/rollouts.senseops.dev", "--timeout=60s")
    ns = f"roe2e-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", ns)
    # Outside /tmp: the runtime pods mount their own /tmp, and must see a model directory the test corrupts.
    # Every file:// model lives under this one folder, the operator's file-artifact root (it refuses others).
    scratch = DEFAULT_ROOT / f"rollout-e2e-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    model_dir = scratch / "tiny"
    shutil.copytree(ensure_tiny_model(), model_dir, dirs_exist_ok=True)
    _, sha256, _ = local_directory_manifest(model_dir)
    operator = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", [ns],
                               {"SENSEOPS_FILE_ARTIFACT_ROOT": str(scratch)}).start()
    try:
        apply(cluster, jwt_secret(ns), *(asr_model(ns, v, model_dir, sha256) for v in ("v1", "v2", "v3", FAULTY)),
              *target(ns, model_dir, sha256, FAULT_ENV), gateway(ns, "web", GATEWAY_CLASS),
              http_route(ns, TARGET, "web", [(TARGET, 100)]))
        wait_until("the stable runtime pod ready", lambda: len(ready_endpoints(cluster, ns, TARGET)) == 1,
                   timeout_s=READY_TIMEOUT_S, interval_s=2)
        wait_until("ASRModels Ready", lambda: all(
            (m.get("status") or {}).get("phase") == "Ready"
            for m in cluster.get_json("asrmodels", "-n", ns)["items"]), timeout_s=120, interval_s=1)
        port = gateway_port(cluster, ns, "web")
        yield Stage(cluster, ns, operator, port, prometheus_server, model_dir, sha256, scratch)
    finally:
        cluster.kubectl("delete", "rollouts,asrmodels", "--all", "-n", ns, "--timeout=60s", check=False)
        operator.stop()
        cluster.kubectl("delete", "httproutes,gateways,deployments,services", "--all", "-n", ns, "--wait=true",
                        "--timeout=90s", check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def fresh_rollout(stage: Stage) -> Iterator[Stage]:
    """After each test: the Rollout deleted and its candidate pods gone (the next test reuses the names)."""
    yield stage
    stage.cluster.kubectl("delete", "rollout", ROLLOUT, "-n", stage.ns, "--ignore-not-found", "--timeout=60s")
    wait_until("the candidate's pods gone", lambda: not stage.cluster.get_json(
        "pods", "-n", stage.ns, "-l", f"app.kubernetes.io/instance={CANARY}")["items"], timeout_s=120, interval_s=1)


def test_good_candidate_5_50_100_matches_the_split_survives_operator_kills_and_is_promoted(
        fresh_rollout: Stage) -> None:
    """5 → 50 → 100 with the error-ratio analysis passing; at each weight ≥ 1,000 requests through HAProxy
    split as the weight says (±3 points); the operator is SIGKILLed at every step and once during promotion
    and nothing repeats or jumps; promoted; not one request failed."""
    stage = fresh_rollout
    stable, candidate = stage.stable_version(), "v2"
    assert stable == "v1"
    steps: list[dict[str, Any]] = [{"setWeight": 5}, {"analysis": {"metrics": ["error-ratio"]}}, {"pause": {}},
             {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}, {"pause": {}}]
    splits: dict[int, tuple[float, int]] = {}
    with Load(stage.port) as load, StatusRecorder(stage.cluster.kubeconfig, stage.ns) as recorder:
        apply(stage.cluster, rollout(stage, stable, candidate, steps, scaleDownDelaySeconds=3,
                                     progressDeadlineSeconds=int(READY_TIMEOUT_S)))
        for weight in (5, 50, 100):
            at = stage.wait(f"weight {weight} confirmed and paused by its step", holding_at(weight))
            stage.kill_operator()
            splits[weight] = load.share(candidate, SETTLE_REQUESTS, SPLIT_REQUESTS)
            now = stage.status()
            assert (now["currentStepIndex"], now["actualWeight"]) == (at["currentStepIndex"], weight), now
            stage.patch_status({"promote": True})
        stage.wait("the stable Deployment moving to the candidate",
                   lambda s: "moving the stable Deployment" in (s.get("message") or "") or bool(s.get("outcome")))
        stage.kill_operator()
        done = stage.wait("promoted", lambda s: s.get("outcome") == "Promoted")
        # the candidate is scaled down after scaleDownDelaySeconds: keep the load on through that too
        wait_until("the candidate scaled down", lambda: stage.cluster.get_json(
            "deployment", CANARY, "-n", stage.ns)["spec"]["replicas"] == 0, timeout_s=60, interval_s=1)
        load.share(candidate, 0, 300)
    print(f"\nsplits (weight: candidate share %, failed): {splits}; requests {len(load.results)}, "
          f"failed {load.failed()}; weights {recorder.weights()}; steps {recorder.steps()}")
    for weight, (share, failed) in splits.items():
        assert abs(share - weight) <= TOLERANCE_POINTS and failed == 0, (weight, share, failed)
    assert load.failed() == 0, load.errors[:10]
    # monotonic, only the configured weights, then back to the stable Service (now serving the candidate)
    assert recorder.weights()[-4:] == [5, 50, 100, 0] and set(recorder.weights()) <= {0, 5, 50, 100}, \
        recorder.weights()
    assert recorder.steps() == sorted(set(recorder.steps())), recorder.steps()
    assert done["stableModel"] == candidate and done["previousStableModel"] == stable and done["phase"] == "Healthy"
    passed = [m for m in done["measurements"] if m["phase"] == "Successful"]
    assert passed and f'app_kubernetes_io_version="{candidate}"' in passed[-1]["resolvedQuery"], done["measurements"]
    assert not [m for m in done["measurements"] if m["phase"] == "Failed"], done["measurements"]
    assert stage.stable_version() == candidate
    completed = [e["message"] for e in stage.events() if e["reason"] == "StepCompleted"]
    assert len(completed) == len(steps) and len(set(completed)) == len(steps), completed  # none run twice
    last = [v for _, v, _ in load.results[-300:]]
    assert set(last) == {candidate}, set(last)  # all traffic on the stable Service, which serves v2 now


def test_planted_regression_aborts_within_one_interval_and_traffic_returns_to_stable(
    fresh_rollout: Stage, capsys: pytest.CaptureFixture[str],
) -> None:
    """The candidate answers 500 on half its requests; the analysis sees the error ratio in Prometheus and
    aborts within one interval + 2 s of the breach being visible; weight 0; no failure after that; status and
    Events carry the measurement, its value, threshold and resolved query."""
    stage = fresh_rollout
    stable = stage.stable_version()
    steps: list[dict[str, Any]] = [{"setWeight": 5}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
                                   {"setWeight": 100}]
    metric = AnalysisMetric.model_validate(error_ratio_metric(stage.prometheus.url))
    query = resolved_query(metric, QueryContext(candidate=FAULTY, stable=stable, namespace=stage.ns))
    breach: list[float] = []
    stop = threading.Event()

    def watch_prometheus() -> None:
        while not stop.wait(0.5) and not breach:
            try:
                result = stage.prometheus.api("query", {"query": query})["result"]
            except Exception:  # a busy Prometheus: look again
                continue
            if result and float(result[0]["value"][1]) > THRESHOLD:
                breach.append(time.monotonic())

    watcher = threading.Thread(target=watch_prometheus, daemon=True)
    with Load(stage.port) as load, StatusRecorder(stage.cluster.kubeconfig, stage.ns) as recorder:
        watcher.start()
        apply(stage.cluster, rollout(stage, stable, FAULTY, steps, abortScaleDownDelaySeconds=3,
                                     progressDeadlineSeconds=int(READY_TIMEOUT_S)))
        status = stage.wait("aborted and rolled back",
                            lambda s: s.get("outcome") == "RolledBack" and s.get("actualWeight") == 0)
        stop.set()
        watcher.join(10)
        zero = recorder.wait_first(lambda s: bool(s.get("abort")) and s.get("actualWeight") == 0)
        after = load.share(stable, 0, 500)
    aborted = recorder.first(lambda s: bool(s.get("abort")))
    assert breach and aborted is not None and zero is not None, (breach, recorder.changes[-3:])
    took = aborted - breach[0]
    print(f"\nbreach visible in Prometheus → abort: {took:.1f} s; → weight 0 confirmed: {zero - breach[0]:.1f} s; "
          f"failed before the abort: {load.failed() - load.failed(zero)}; weights {recorder.weights()}")
    assert took <= INTERVAL_S + 2, took
    assert load.failed(since=zero) == 0, load.errors[-10:]
    assert after == (100.0, 0), after
    assert any(v == FAULTY and not ok for _, v, ok in load.results), "the planted fault never reached a client"
    assert recorder.weights() == [0, 5, 0] or recorder.weights() == [5, 0], recorder.weights()
    failed = [m for m in status["measurements"] if m["phase"] == "Failed"][-1]
    assert failed["value"] > THRESHOLD and failed["threshold"] == f"<= {THRESHOLD}" and failed["resolvedQuery"] == query
    value = f"{failed['value']:g}"
    for text in (status["abortReason"], *(e["message"] for e in stage.events() if e["reason"] == "AnalysisAbort")):
        assert value in text and f"<= {THRESHOLD}" in text and query in text, text
    # The CLI shows the same: the abort, and the failing measurement with its value, threshold and query.
    capsys.readouterr()
    assert rollout_cli(["get", ROLLOUT, "-n", stage.ns, "--kubeconfig", str(stage.cluster.kubeconfig)]) == 0
    shown = capsys.readouterr().out
    # (the abort reason carries value, threshold and query, checked above; the measurement lines show the query)
    assert f"aborted    {status['abortReason']}" in shown and f"query: {query}" in shown, shown
    assert status["stableModel"] == stable and stage.stable_version() == stable
    wait_until("the candidate scaled down after abortScaleDownDelaySeconds", lambda: stage.cluster.get_json(
        "deployment", CANARY, "-n", stage.ns)["spec"]["replicas"] == 0, timeout_s=60, interval_s=1)


def test_prometheus_down_pauses_the_rollout_and_it_continues_when_back(fresh_rollout: Stage) -> None:
    """Prometheus stopped at 5 %: ProviderErrors pause, no advance past the timed pause; back: it goes on
    to 50 %. Ended by an abort through status (as the CLI does), which spares a second stable roll."""
    stage = fresh_rollout
    stable = stage.stable_version()
    # The pause outlasts one analysis interval, so Prometheus' first failed answer lands inside it.
    steps: list[dict[str, Any]] = [{"setWeight": 5}, {"pause": {"durationSeconds": 2 * INTERVAL_S}},
                                   {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
    manifest = rollout(stage, stable, "v3", steps, abortScaleDownDelaySeconds=0,
                       progressDeadlineSeconds=int(READY_TIMEOUT_S))
    manifest["spec"]["analysis"]["metrics"][0]["consecutiveErrorLimit"] = 1
    with StatusRecorder(stage.cluster.kubeconfig, stage.ns) as recorder, Load(stage.port, rate_per_s=50) as load:
        apply(stage.cluster, manifest)
        stage.wait("weight 5 and a measurement", lambda s: s.get("actualWeight") == 5 and bool(s.get("measurements")))
        stage.prometheus.stop()
        try:
            held = stage.wait("a ProviderErrors pause", lambda s: any(
                p["reason"] == "ProviderErrors" for p in s.get("pauseConditions") or []), timeout_s=60)
            assert held["phase"] == "Paused", held
            time.sleep(2 * INTERVAL_S)  # the timed pause is long over: a blind rollout must not advance
            now = stage.status()
            assert (now["currentStepIndex"], now["actualWeight"]) == (held["currentStepIndex"], 5), now
        finally:
            stage.prometheus.start()
        stage.wait("50 % after Prometheus came back", lambda s: s.get("actualWeight") == 50 and paused_by_step(s),
                   timeout_s=120)
        stage.patch_status({"abort": True})
        stage.wait("rolled back", lambda s: s.get("outcome") == "RolledBack" and s.get("actualWeight") == 0)
    print(f"\nweights {recorder.weights()}; requests {len(load.results)}, failed {load.failed()}")
    assert recorder.weights()[-3:] == [5, 50, 0], recorder.weights()
    assert load.failed() == 0, load.errors[:5]
    events = stage.events()
    assert any(e["reason"] == "Resumed" and "ProviderErrors" in e["message"] for e in events)


def test_candidate_that_never_serves_keeps_weight_0_and_degrades_at_the_progress_deadline(
        fresh_rollout: Stage) -> None:
    """The candidate's model directory is corrupted after the operator verified it: the runtime refuses it
    (sha256 mismatch) and never turns ready. No traffic goes to it; at progressDeadlineSeconds → Degraded."""
    stage = fresh_rollout
    stable = stage.stable_version()
    bad = stage.scratch / "v-bad"
    shutil.copytree(stage.model_dir, bad)
    apply(stage.cluster, asr_model(stage.ns, "v-bad", bad, stage.sha256))
    wait_until("ASRModel v-bad Ready", lambda: (stage.cluster.get_json("asrmodel", "v-bad", "-n", stage.ns).get(
        "status") or {}).get("phase") == "Ready", timeout_s=60, interval_s=1)
    victim = next(p for p in sorted(bad.rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"corrupted after verification")
    with StatusRecorder(stage.cluster.kubeconfig, stage.ns) as recorder:
        apply(stage.cluster, rollout(stage, stable, "v-bad", [{"setWeight": 5}, {"pause": {}}, {"setWeight": 100}],
                                     progressDeadlineSeconds=30))
        status = stage.wait("Degraded", lambda s: s.get("phase") == "Degraded", timeout_s=120)
    print(f"\n{status['message']}; weights {recorder.weights()}")
    assert set(recorder.weights()) <= {0}, recorder.weights()
    assert "candidate pods ready" in status["message"] and "progressDeadlineSeconds 30" in status["message"]
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "ProgressDeadlineExceeded", progressing
    assert any(e["reason"] == "ProgressDeadlineExceeded" for e in stage.events())
    readyz = httpx.get(f"http://{next(iter(_pod_ips(stage, CANARY)))}:8000/readyz", timeout=5).json()
    assert "sha256" in readyz["reason"], readyz


def _pod_ips(stage: Stage, instance: str) -> set[str]:
    pods = stage.cluster.get_json("pods", "-n", stage.ns, "-l", f"app.kubernetes.io/instance={instance}")["items"]
    return {p["status"]["podIP"] for p in pods if (p.get("status") or {}).get("podIP")}
