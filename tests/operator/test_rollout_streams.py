"""Live WebSocket streams through the gateway for the whole of an aborted and of a promoted rollout: none cut,
every final delivered (issue 10, item 8).

Real parts: the control plane, the operator process, runtime pods that really serve the tiny model on the
process node, HAProxy programmed from the HTTPRoute by the Gateway stand-in. Four speakers stream espeak-ng
speech at real time through the gateway the whole time: two keep one stream for the whole test (a streamer's
desktop app), two open a new stream every few sentences (so new streams follow the weights and some land on
the candidate). One Rollout is aborted while the candidate holds streams, retried, and promoted; the pods
that lose traffic (the candidate after the abort; the old stable pod and then the candidate during the
promotion) drain: their streams get the finals of what was said, then 1012, and the clients resume on the
other side. At the end every sentence sent has exactly one final with the right text, and no stream was
closed with anything but 1012 (drain) or 1000 (its own end).
"""

from __future__ import annotations

import asyncio
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
from senseops_runtime.auth import AuthConfig, issue_token
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
from tests.procnode.workloads import RUNTIME_SECRET, jwt_secret, ready_endpoints, runtime_deployment
from tests.runtime.helpers import ENGLISH, utterance_pcm

pytestmark = [pytest.mark.cluster]
READY_TIMEOUT_S = 400.0
LABELS = {"app.kubernetes.io/name": "senseops-runtime", "app.kubernetes.io/instance": "asr"}
# A short drain for the test (the manifests use 20 s): utterances are ~1 s, so 4 s of grace always suffices.
DRAIN_ENV = {"SENSEOPS_DRAIN_TIMEOUT_S": "8", "SENSEOPS_DRAIN_SEGMENT_GRACE_S": "4", "SENSEOPS_WARMUP": "true"}
SENTENCE = [frame for frame in pcm_frames(utterance_pcm(ENGLISH, before_s=0.6, after_s=1.2), 100)]


def token(subject: str) -> str:
    return issue_token(AuthConfig(hs256_secret=RUNTIME_SECRET), RUNTIME_SECRET, subject, subject, ["stream"],
                       False, time.time(), 3600)


@dataclass
class Speaker:
    """One client: a new stream every `per_stream` sentences, or one stream for the whole test (None)."""

    name: str
    per_stream: int | None
    streams: list[tuple[int, StreamOutcome]] = field(default_factory=list)  # (sentences sent, outcome)
    closes: list[tuple[float, int | None, str]] = field(default_factory=list)  # (monotonic, code, reason)
    finals_heard: int = 0

    async def sentences(self, stop: threading.Event, sent: list[int]) -> AsyncIterator[bytes]:
        """Whole sentences until `stop` (the one under way is finished) or `per_stream` of them."""
        while not stop.is_set() and (self.per_stream is None or sent[0] < self.per_stream):
            for frame in SENTENCE:
                yield frame
            sent[0] += 1

    def _heard(self, _: dict[str, Any]) -> None:
        self.finals_heard += 1

    async def run(self, url: str, stop: threading.Event) -> None:
        while not stop.is_set():
            sent = [0]
            outcome = await stream_pcm_resilient(
                url, self.sentences(stop, sent), token=token(self.name), options={"itn": False}, realtime=True,
                max_reconnects=30, on_final=self._heard,
                on_close=lambda code, reason: self.closes.append((time.monotonic(), code, reason)))
            self.streams.append((sent[0], outcome))
            if outcome.close_codes[-1:] != [1000]:
                return  # failed for good; the assertions report it


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
    from senseops_common.testmodel import ensure_tiny_model

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
    operator = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log", [ns], {}).start()
    stop = threading.Event()
    speakers = [Speaker(f"app-{i}-{secrets.token_hex(2)}", None) for i in range(2)]
    speakers += [Speaker(f"short-{i}-{secrets.token_hex(2)}", 4) for i in range(2)]
    thread: threading.Thread | None = None
    try:
        wait_until("the stable pod ready", lambda: len(ready_endpoints(cluster, ns, "asr")) == 1 or None,
                   timeout_s=READY_TIMEOUT_S, interval_s=2)
        url = f"ws://127.0.0.1:{gateway_port(cluster, ns, 'web')}/ws/stream"

        async def all_speakers() -> None:
            await asyncio.gather(*(s.run(url, stop) for s in speakers))

        thread = threading.Thread(target=asyncio.run, args=(all_speakers(),), daemon=True)
        thread.start()
        wait_until("a final for every speaker", lambda: all(s.finals_heard for s in speakers) or None,
                   timeout_s=90, interval_s=0.5)

        # --- aborted: the candidate gets streams at 50 %, then is aborted and drained
        apply(cluster, rollout(ns))
        status = watch(cluster, ns, lambda s: s.get("actualWeight") == 50, READY_TIMEOUT_S)
        assert status.get("actualWeight") == 50, f"{status}\n{operator.log_tail()}"
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
        if thread is not None:
            thread.join(timeout=90)
        # While the operator runs: it removes its finalizers.
        cluster.kubectl("delete", "rollouts,asrmodels", "--all", "-n", ns, "--timeout=60s", check=False)
        operator.stop()
        cluster.kubectl("delete", "deployments", "--all", "-n", ns, "--timeout=60s", check=False)

    assert thread is not None and not thread.is_alive(), "the speakers did not finish"
    report = []
    for s in speakers:
        sentences = sum(n for n, _ in s.streams)
        codes = [c for _, o in s.streams for c in o.close_codes]
        report.append(f"{s.name}: {len(s.streams)} stream(s), {sentences} sentences, closes {codes}, drained "
                      f"{drains_between(s, abort_at, aborted_at)} in the abort, "
                      f"{drains_between(s, promote_at, promoted_at)} in the promotion")
    print("\n" + "\n".join(report))
    for s in speakers:
        for sent, outcome in s.streams:
            texts = [m["final"] for _, m in outcome.finals]
            # none cut: a stream ends only by its own eof (1000); the only other close is a drain's 1012
            assert outcome.close_codes and outcome.close_codes[-1] == 1000, (s.name, outcome.close_codes,
                                                                            outcome.close_reason)
            assert set(outcome.close_codes) <= {1000, 1012}, (s.name, outcome.close_codes, outcome.close_reason)
            # every sentence sent got exactly one final, with its words
            assert texts == [ENGLISH.text] * sent, (s.name, sent, texts)
    assert sum(drains_between(s, abort_at, aborted_at) for s in speakers) >= 1, \
        "the aborted candidate held a stream; it must have been drained with 1012"
    for s in speakers[:2]:  # the long streams started on the old stable pod, which the promotion replaced
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
