"""Live WebSocket streams through the gateway for the whole of an aborted and of a promoted rollout: none cut,
every final delivered (issue 10, item 8).

Real parts: the control plane, the operator process, runtime pods that really serve the tiny model on the
process node, HAProxy programmed from the HTTPRoute by the Gateway stand-in. Speakers stream espeak-ng
speech at real time through the gateway, each on one stream for the whole test (a streamer's desktop app): two
from the start (on the v1 stable pod), two more once the candidate has 50 % (round robin puts one of them on
the candidate). The Rollout is aborted while the candidate holds a stream, retried, and promoted; the pods
that lose traffic (the candidate after the abort; the old stable pod and then the candidate during the
promotion) drain: their streams get the finals of what was said, then 1012, and the clients resume on the
other side. At the end every sentence sent has exactly one final with the right text, and the streams were
closed only by drains (1012) and at their own end (1000).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from senseops_common.storage import local_directory_manifest
from senseops_runtime.client import StreamOutcome, pcm_frames, stream_pcm_resilient
from tests.common.waiting import wait_until
from tests.gateway.conftest import (  # noqa: F401 - fixtures
    GATEWAY_CLASS,
    GatewayDataplane,
    gateway_crds,
    gateway_dataplane,
    gw_namespace,
)
from tests.gateway.helpers import apply, gateway, gateway_port, http_route
from tests.operator.cases import asr_model
from tests.operator.operator_process import OperatorProcess
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.workloads import jwt_secret, ready_endpoints, runtime_deployment, runtime_token
from tests.runtime.helpers import ENGLISH, utterance_pcm

pytestmark = [pytest.mark.cluster]
READY_TIMEOUT_S = 400.0
LABELS = {"app.kubernetes.io/name": "senseops-runtime", "app.kubernetes.io/instance": "asr"}
# A short drain for the test (the manifests use 20 s): utterances are ~1 s, so 4 s of grace always suffices.
DRAIN_ENV = {"SENSEOPS_DRAIN_TIMEOUT_S": "8", "SENSEOPS_DRAIN_SEGMENT_GRACE_S": "4", "SENSEOPS_WARMUP": "true"}
SENTENCE = [frame for frame in pcm_frames(utterance_pcm(ENGLISH, before_s=0.6, after_s=1.2), 100)]


def token(subject: str) -> str:
    return runtime_token(subject)


@dataclass
class Speaker:
    """One client (a streamer's desktop app): one stream for the whole test, resumed across reconnects."""

    name: str
    streams: list[tuple[int, StreamOutcome]] = field(default_factory=list)  # (sentences sent, outcome)
    closes: list[tuple[float, int | None, str]] = field(default_factory=list)  # (monotonic, code, reason)
    finals_heard: int = 0

    async def sentences(self, stop: threading.Event, sent: list[int]) -> AsyncIterator[bytes]:
        """Whole sentences until `stop` (the one under way is finished)."""
        while not stop.is_set():
            for frame in SENTENCE:
                yield frame
            sent[0] += 1

    def _heard(self, _: dict[str, Any]) -> None:
        self.finals_heard += 1

    async def run(self, url: str, stop: threading.Event) -> None:
        sent = [0]
        outcome = await stream_pcm_resilient(
            url, self.sentences(stop, sent), token=token(self.name), options={"itn": False}, realtime=True,
            max_reconnects=30, on_final=self._heard,
            on_close=lambda code, reason: self.closes.append((time.monotonic(), code, reason)))
        self.streams.append((sent[0], outcome))


def drains_between(speaker: Speaker, start: float, end: float) -> int:
    return sum(1 for at, code, _ in speaker.closes if code == 1012 and start <= at <= end)


def active_streams(ip: str) -> float:
    with urllib.request.urlopen(f"http://{ip}:8000/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("senseops_active_streams "):
                return float(line.split()[1])
    return 0.0


def target(ns: str, model_dir: Path) -> list[dict[str, Any]]:
    """The stable runtime (1 replica) and its Service, selecting by name and instance only (not version)."""
    deployment, service = runtime_deployment(ns, model_dir, name="asr", version="v1", replicas=1, extra_env=DRAIN_ENV)
    deployment["spec"]["selector"] = {"matchLabels": LABELS}
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    service["spec"]["selector"] = LABELS
    return [deployment, service]


def test_live_streams_are_never_cut_by_an_aborted_or_a_promoted_rollout(
        gateway_dataplane: GatewayDataplane, process_node: ProcessNodeHandle, gw_namespace: str,  # noqa: F811
        tmp_path: Path) -> None:
    from tests.testmodel import ensure_tiny_model

    cluster, ns = gateway_dataplane.cluster, gw_namespace
    cluster.kubectl("apply", "--server-side", "-k", str(Path(__file__).resolve().parents[2] / "crds"))
    for crd in ("asrmodels", "rollouts"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.senseops.dev", "--timeout=60s")
    model_dir = Path(ensure_tiny_model())
    _, digest, _ = local_directory_manifest(model_dir)
    models = []
    for version in ("v1", "v2"):
        model = asr_model(version)
        model["metadata"]["namespace"] = ns
        model["spec"]["artifact"] = {"uri": f"file://{model_dir}/", "sha256": digest, "format": "funasr"}
        models.append(model)
    apply(cluster, jwt_secret(ns), *models, *target(ns, model_dir), gateway(ns, "web", GATEWAY_CLASS),
          http_route(ns, "asr", "web", [("asr", 100)]))
    # The operator hashes file:// models only under its file-artifact root: the tiny model's cache folder.
    operator = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log", [ns],
                               {"SENSEOPS_FILE_ARTIFACT_ROOT": str(model_dir.parent)}).start()
    stop = threading.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    speakers: list[Speaker] = []
    running: list[concurrent.futures.Future[None]] = []

    def start_speaking(name: str) -> None:
        speaker = Speaker(f"{name}-{secrets.token_hex(2)}")
        speakers.append(speaker)
        running.append(asyncio.run_coroutine_threadsafe(speaker.run(url, stop), loop))
        wait_until(f"a final for {speaker.name}", lambda: speaker.finals_heard or None, timeout_s=90, interval_s=0.5)

    try:
        wait_until("the stable pod ready", lambda: len(ready_endpoints(cluster, ns, "asr")) == 1 or None,
                   timeout_s=READY_TIMEOUT_S, interval_s=2)
        url = f"ws://127.0.0.1:{gateway_port(cluster, ns, 'web')}/ws/stream"
        for name in ("app-0", "app-1"):  # on the v1 stable pod from the start
            start_speaking(name)

        # --- aborted: the candidate gets streams at 50 %, then is aborted and drained
        apply(cluster, rollout(ns))
        status = watch(cluster, ns, lambda s: s.get("actualWeight") == 50, READY_TIMEOUT_S)
        assert status.get("actualWeight") == 50, f"{status}\n{operator.log_tail()}"
        # New streams follow the weights: HAProxy's round robin at 1:1 puts one of two new streams on each side.
        for name in ("late-0", "late-1"):
            start_speaking(name)
        wait_until("a stream on the candidate", lambda: any(
            active_streams(ip) >= 1 for ip in ready_endpoints(cluster, ns, "ro-canary")) or None,
            timeout_s=90, interval_s=0.5)
        abort_at = time.monotonic()
        patch_status(cluster, ns, {"abort": True})
        status = watch(cluster, ns, lambda s: s.get("outcome") == "RolledBack", 120)
        assert status.get("outcome") == "RolledBack", f"{status}\n{operator.log_tail()}"
        wait_until("the candidate's pods gone", lambda: not candidate_pods(cluster, ns) or None, timeout_s=90)
        aborted_at = time.monotonic()

        # --- promoted: retry, 50 % again, then all the way; the old stable pod and the candidate drain
        patch_status(cluster, ns, {"retry": True})
        status = watch(cluster, ns, lambda s: s.get("actualWeight") == 50 and not s.get("abort"), READY_TIMEOUT_S)
        assert status.get("actualWeight") == 50, f"{status}\n{operator.log_tail()}"
        promote_at = time.monotonic()
        patch_status(cluster, ns, {"promoteFull": True})
        status = watch(cluster, ns, lambda s: s.get("outcome") == "Promoted", READY_TIMEOUT_S)
        assert status.get("outcome") == "Promoted", f"{status}\n{operator.log_tail()}"
        wait_until("the candidate's pods gone", lambda: not candidate_pods(cluster, ns) or None, timeout_s=90)
        promoted_at = time.monotonic()
        time.sleep(3)  # a few sentences on the promoted stable pods
    finally:
        stop.set()
        done, _ = concurrent.futures.wait(running, timeout=90)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        # While the operator runs: it removes its finalizers.
        cluster.kubectl("delete", "rollouts,asrmodels", "--all", "-n", ns, "--timeout=60s", check=False)
        operator.stop()
        cluster.kubectl("delete", "deployments", "--all", "-n", ns, "--timeout=60s", check=False)

    assert len(done) == len(running), "the speakers did not finish"
    for future in done:
        future.result()
    report = []
    for s in speakers:
        sentences = sum(n for n, _ in s.streams)
        slips = [str(m["final"]) for _, o in s.streams for _, m in o.finals if m["final"] != ENGLISH.text]
        closes = [(c, r[:40]) for _, c, r in s.closes]
        report.append(f"{s.name}: {sentences} sentences, words slipped in {slips}, closes {closes}, drained "
                      f"{drains_between(s, abort_at, aborted_at)} in the abort, "
                      f"{drains_between(s, promote_at, promoted_at)} in the promotion")
    print("\n" + "\n".join(report))
    for s in speakers:
        ((sent, outcome),) = s.streams  # one stream each, resumed across every reconnect
        # none cut: the stream ends by its own eof (1000); on the way only drains (1012) closed it — and, on
        # a starved machine, a missed keepalive pong (1011 "keepalive ping timeout"), which resumes the same way
        assert outcome.close_codes and outcome.close_codes[-1] == 1000, (s.name, s.closes)
        unexpected = [(c, r) for _, c, r in s.closes if c not in (1000, 1012) and "keepalive" not in r]
        assert not unexpected, (s.name, s.closes)
        # every sentence sent got exactly one final (none lost, none split or repeated by a reconnect)...
        texts = [str(m["final"]) for _, m in outcome.finals]
        assert len(texts) == sent and all(texts), (s.name, sent, texts)
        # ...with its words: the tiny test model now and then drops a word when its decode is batched with other
        # streams' segments (seen: "hello" for "hello world" 3-4 times in ~120 sentences, also on streams no
        # drain had touched yet), so a few such slips are allowed; the count above is exact
        wrong = [t for t in texts if t != ENGLISH.text]
        assert len(wrong) <= max(3, sent // 10), (s.name, sent, wrong)
    assert sum(drains_between(s, abort_at, aborted_at) for s in speakers) >= 1, \
        "the aborted candidate held a stream; it must have been drained with 1012"
    for s in speakers:  # every stream was on the old stable pod when the promotion replaced it
        assert drains_between(s, promote_at, promoted_at) >= 1, (s.name, s.closes)


def rollout(ns: str) -> dict[str, Any]:
    return {"apiVersion": "senseops.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "ro", "namespace": ns},
            "spec": {"target": {"deployment": "asr", "service": "asr", "port": 80},
                     "stableModel": {"name": "v1"}, "candidateModel": {"name": "v2"},
                     "steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}],
                     "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}},
                     "progressDeadlineSeconds": 600, "scaleDownDelaySeconds": 2, "abortScaleDownDelaySeconds": 2}}


def patch_status(cluster: Any, ns: str, fields: dict[str, Any]) -> None:
    """A manual verb, as the CLI sends it: status only, never spec."""
    cluster.kubectl("patch", "rollout", "ro", "-n", ns, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": fields}))


def candidate_pods(cluster: Any, ns: str) -> list[dict[str, Any]]:
    return list(cluster.get_json("pods", "-n", ns, "-l", "app.kubernetes.io/instance=ro-canary")["items"])


def watch(cluster: Any, ns: str, until: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = cluster.get_json("rollout", "ro", "-n", ns).get("status") or {}
        if until(status):
            break
        time.sleep(0.5)
    return status
