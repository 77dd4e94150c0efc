"""`make demo-loop`: the whole loop on the local stack, one function per phase.

    python -m scripts.loop run [--until PHASE]   # PHASE: stack base record finetune release planted
    python -m scripts.loop down                  # the namespace, the bucket's objects, the operator, the stack

Every phase records events (what happened and why) and its wall time; the end prints the timeline, the
streamers' table, the weights over time, the CER of base and new model on held-out speech, the rollback
reason, and writes .demo-loop/loop.png and .demo-loop/run.json.

Round 1 is the operator's own loop: a RetrainPolicy (threshold scaled down) creates the FineTuneJob when the
reviewed audio is in; the job trains, evaluates, builds the model image into the stack's registry and
publishes the ASRModel; the policy's release template creates the Rollout (quality gate, 5 → 50 → 100 with
analysis) while the streamers keep streaming. Round 2 plants a bad candidate by hand with the same template.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scripts.loop import manifests as m
from scripts.loop.chart import draw
from scripts.loop.domain import held_out, streamers
from scripts.loop.review import HELD_OUT_KEY, apply_review, write_held_out
from scripts.loop.sampler import Sampler
from scripts.loop.streamers import StreamerTeam, format_reports
from scripts.loop.timeline import Recorder, format_phases, format_samples, format_timeline, format_weights
from tests.common.environ import environment
from tests.controlplane.fixtures import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".demo-loop"
LOGS = STATE / "logs"
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
STACK_STATE = ROOT / ".cluster" / "stack.json"
PHASES = ("stack", "base", "record", "finetune", "release", "planted")
READY_TIMEOUT_S = 600.0
TRAIN_TIMEOUT_S = 1500.0
ROLLOUT_TIMEOUT_S = 900.0
FIRST_TRIGGER = f"{m.POLICY}-1"  # the policy's first FineTuneJob, and the Rollout that releases its model
TUNED_MODEL = f"{m.TUNED_PREFIX}-1"
PLANTED_MODEL = "planted-slow"
PLANTED_ROLLOUT = "planted-1"
# What run.json keeps of a run's facts (the full-loop test reads them).
FACTS = ("live_base_cer", "reviewed_seconds", "cer", "image", "release", "planted", "rollback_reason",
         "highest_weight", "planted_route_weight_max", "errors_after_rollback", "stream_reconnects")
CRDS = ("asrmodels", "finetunejobs", "rollouts", "retrainpolicies")


def say(text: str) -> None:
    print(f"      {text}", flush=True)


@dataclass
class Loop:
    """What the phases share: the cluster, the stack's addresses, the recorder, and what each phase made."""

    cluster: ClusterHandle
    stack: dict[str, Any]
    recorder: Recorder = field(default_factory=Recorder)
    t0: float = field(default_factory=time.monotonic)
    facts: dict[str, Any] = field(default_factory=dict)
    team: StreamerTeam | None = None
    sampler: Sampler | None = None
    candidate_backend: str | None = None
    candidate_model: str | None = None
    state: Path = STATE  # the operator's pid file and logs

    def now(self) -> float:
        return time.monotonic() - self.t0

    def event(self, phase: str, what: str, why: str = "") -> None:
        self.recorder.event(self.now(), phase, what, why)
        say(f"{what}" + (f" — {why}" if why else ""))

    @property
    def store_env(self) -> dict[str, str]:
        return dict(self.stack["minio"]["env"])

    @property
    def gateway_url(self) -> str:
        if "gateway_port" not in self.facts:  # a run resumed with --from
            self.facts["gateway_port"] = gateway_port(self)
        return f"http://127.0.0.1:{self.facts['gateway_port']}"

    @property
    def registry_auth(self) -> Path | None:
        """The stack registry's docker config (None: a stack without a registry, as in the short e2e test)."""
        registry = self.stack.get("registry")
        return Path(registry["docker_config"]) / "config.json" if registry else None

    @property
    def stream_url(self) -> str:
        return self.gateway_url.replace("http://", "ws://") + "/ws/stream"

    def store(self) -> Any:
        from senseops_common.storage import StoreConfig, open_store

        return open_store(m.store_uri(), StoreConfig.from_env(self.store_env))

    def apply(self, *objs: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", m.NAMESPACE, "-f", "-",
                             input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def get(self, *args: str) -> Any:
        return self.cluster.get_json(*args, "-n", m.NAMESPACE)


class LoopError(RuntimeError):
    """A phase could not finish; the message says what it waited for and where the logs are."""


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float, interval_s: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval_s)
    raise LoopError(f"timed out after {timeout_s:.0f} s waiting for {what}; logs under {LOGS} and .cluster/logs")


def python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator", "runtime",
                                                                                 "trainer_image", "."))}


# --- phase 1: the stack, the namespace, the operator -----------------------------------------------------


def phase_stack(loop: Loop) -> None:
    """The stack is up (tests.stack), the CRDs, a clean namespace and bucket, the store Secret, the operator."""
    cluster = loop.cluster
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    for plural in CRDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.senseops.dev", "--timeout=60s")
    start_operator(loop)
    reset_namespace(loop)
    cluster.kubectl("create", "namespace", m.NAMESPACE)
    reset_bucket(loop)
    from tests.procnode.workloads import jwt_secret

    cluster.kubectl("create", "secret", "generic", m.STORE_SECRET, "-n", m.NAMESPACE,
                    *[f"--from-literal={k}={v}" for k, v in loop.store_env.items()])
    if loop.registry_auth is not None:  # the image build Job pushes with it
        cluster.kubectl("create", "secret", "generic", m.PUSH_SECRET, "-n", m.NAMESPACE,
                        "--type=kubernetes.io/dockerconfigjson", f"--from-file=.dockerconfigjson={loop.registry_auth}")
    loop.apply(jwt_secret(m.NAMESPACE))
    loop.event("stack", f"namespace {m.NAMESPACE}, bucket {m.BUCKET}, operator running",
               f"control plane, process node, MinIO, registry, Prometheus, gateway from {STACK_STATE.name}")


def start_operator(loop: Loop) -> None:
    """The operator for the loop's namespace: store credentials, the runtime's JWT secret for the quality gate's
    golden probes, and its own copy of the registry credentials (it reads image digests back)."""
    from senseops_operator.providers.golden import PROBE_SECRET_ENV
    from tests.operator.operator_process import OperatorProcess
    from tests.procnode.workloads import RUNTIME_SECRET

    stop_operator(loop.state)
    (loop.state / "logs").mkdir(parents=True, exist_ok=True)
    env = {**loop.store_env, PROBE_SECRET_ENV: RUNTIME_SECRET}
    if loop.registry_auth is not None:
        env["SENSEOPS_REGISTRY_AUTH_FILE"] = str(loop.registry_auth)
    operator = OperatorProcess(loop.cluster.kubeconfig, loop.state / "logs" / "operator.log", [m.NAMESPACE],
                               env).start()
    assert operator.proc is not None
    (loop.state / "operator.pid").write_text(str(operator.proc.pid))
    loop.facts["operator"] = operator


def stop_operator(state: Path = STATE) -> None:
    """Stop the operator this loop started (its pid file, checked against the process's command line)."""
    pid_file = state / "operator.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError, FileNotFoundError):
        if b"senseops_operator" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.2)
    pid_file.unlink(missing_ok=True)


def reset_namespace(loop: Loop) -> None:
    """A rerun starts clean: our objects go first (the operator releases their finalizers), then the namespace."""
    cluster = loop.cluster
    if cluster.kubectl("get", "namespace", m.NAMESPACE, check=False).returncode != 0:
        return
    for kinds in ("retrainpolicies", "rollouts", "finetunejobs", "asrmodels"):
        cluster.kubectl("delete", kinds, "--all", "-n", m.NAMESPACE, "--timeout=120s", check=False)
    cluster.kubectl("delete", "httproutes,gateways", "--all", "-n", m.NAMESPACE, "--timeout=60s", check=False)
    cluster.kubectl("delete", "namespace", m.NAMESPACE, "--timeout=300s", check=False)


def reset_bucket(loop: Loop) -> None:
    from senseops_common.storage import StoreConfig
    from senseops_common.storage.s3_backend import make_s3_client

    client = make_s3_client(StoreConfig.from_env(loop.store_env))
    with contextlib.suppress(Exception):  # already there (a rerun): emptied below
        client.create_bucket(Bucket=m.BUCKET)
    store = loop.store()
    for info in list(store.list("")):
        store.delete(info.key)


# --- phase 2: the base model behind the gateway ------------------------------------------------------------


def publish(loop: Loop, model_dir: Path, name: str) -> tuple[str, str]:
    from senseops_trainer.package import upload_model_dir

    with environment(loop.store_env):
        published = upload_model_dir(model_dir, m.store_uri(), name, "v1")
    return str(published["uri"]), str(published["sha256"])


def phase_base(loop: Loop) -> None:
    """The tiny base model in the store, its ASRModel, the runtime Deployment, the Gateway and HTTPRoute."""
    from tests.procnode.workloads import ready_endpoints
    from tests.testmodel import ensure_tiny_model

    model_dir = Path(ensure_tiny_model())
    uri, sha = publish(loop, model_dir, m.BASE_MODEL)
    loop.apply(m.asr_model(m.BASE_MODEL, uri, sha))
    loop.apply(*m.runtime(uri, sha, str(model_dir)), *m.routing())
    wait_for("the base runtime pod ready", lambda: ready_endpoints(loop.cluster, m.NAMESPACE, m.DEPLOYMENT),
             READY_TIMEOUT_S)
    loop.facts["gateway_port"] = gateway_port(loop)
    wait_for("the runtime answering through the gateway", lambda: _ready_through_gateway(loop), 60, 1)
    loop.event("base", f"runtime serving ASRModel {m.BASE_MODEL} behind the gateway at {loop.gateway_url}",
               "HTTPRoute asr → Service asr (100)")


def gateway_port(loop: Loop) -> int:
    from tests.gateway.helpers import gateway_port as port_of

    return port_of(loop.cluster, m.NAMESPACE, m.GATEWAY)


def _ready_through_gateway(loop: Loop) -> bool:
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{loop.gateway_url}/readyz", timeout=5).status_code == 200
    return False


# --- phase 3: streamers record; reviewed transcripts; the held-out set ----------------------------------------


def phase_record(loop: Loop) -> None:
    """Every streamer says its script once through the gateway; the runtime records; the review step labels."""
    from senseops_common.text import error_rate
    from tests.procnode.workloads import RUNTIME_SECRET

    team = StreamerTeam(loop.stream_url, RUNTIME_SECRET, streamers(), rounds=1)
    loop.event("record", f"{len(team.team)} streamers start: " + ", ".join(
        f"{s.anchor_id} ({s.lang}, {len(s.lines)} lines)" for s in team.team), "consented tokens, real-time PCM")
    team.start()
    if not team.wait(1800):
        raise LoopError("the streamers did not finish their scripts in 30 minutes")
    reports = list(team.reports.values())
    loop.facts["record_reports"] = reports
    print(format_reports(reports))
    texts = [pair for r in reports for pair in r.texts]
    live = error_rate([ref for ref, _ in texts], [hyp for _, hyp in texts]).rate if texts else None
    loop.facts["live_base_cer"] = live
    loop.event("record", f"{sum(r.finals for r in reports)} finals, {len(team.labels())} line up with a script "
               f"line; the base model's live error rate on them {live:.2f}" if live is not None else "no finals",
               "the base model has never heard the domain words")
    labels = team.labels()
    store = loop.store()
    anchors = {s.anchor_id: s.lang for s in team.team}
    wait_for("the runtime's spool to upload every labelled segment",
             lambda: _recorded_ids(store, anchors) >= set(labels), 120, 2)
    summary = apply_review(store, labels, anchors)
    loop.facts["reviewed_seconds"] = summary.seconds
    loop.event("record", f"reviewed transcripts: {summary.kept} segments kept ({summary.seconds:.0f} s of audio, "
               f"{summary.changed} texts corrected), {summary.dropped} dropped",
               "labels come from the streamers' scripts, standing in for a human review; "
               "the live model's lines are kept under review/live/")
    session_ts = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    count = write_held_out(store, held_out(), session_ts)
    store.put(m.GOLDEN_MANIFEST, m.golden_manifest(store.get_bytes(HELD_OUT_KEY).decode()).encode())
    loop.event("record", f"held-out set: {count} sentences no streamer said, as {HELD_OUT_KEY} (and "
               f"{m.GOLDEN_MANIFEST} for the quality gate)",
               "the FineTuneJob's evaluation gate scores base and new model on them; the Rollout's quality gate "
               "sends them through candidate and stable pods")


def _recorded_ids(store: Any, anchors: dict[str, str]) -> set[str]:
    from senseops_common.layout import iter_segment_records

    return {r.segment_id for anchor in anchors for r in iter_segment_records(store, anchor)}


# --- phase 4: the fine-tune ------------------------------------------------------------------------------------


def phase_finetune(loop: Loop) -> None:
    """The RetrainPolicy sees the reviewed audio and creates the FineTuneJob: training, evaluation, image build."""
    registry = loop.stack.get("registry")
    if registry is None:
        raise LoopError(f"{STACK_STATE} names no OCI registry: the FineTuneJob's image build needs one")
    hours = float(loop.facts.get("reviewed_seconds") or _reviewed_seconds(loop)) / 3600
    need = hours * m.MIN_HOURS_SHARE
    window_start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    anchors = [s.anchor_id for s in streamers()]
    loop.apply(m.retrain_policy(anchors, need, window_start, HELD_OUT_KEY, str(registry["host"]),
                                loop.stack["prometheus"]["url"]))
    loop.event("finetune", f"RetrainPolicy {m.POLICY} applied: train when the {len(anchors)} anchors have "
               f"{need:.4f} h of new good audio (minNewHours, all anchors together)",
               f"the seed's 3 h per streamer, scaled down for the demo to {m.MIN_HOURS_SHARE:.0%} of the "
               f"{hours:.4f} h of reviewed audio")
    trigger = wait_for("the RetrainPolicy to create its FineTuneJob", lambda: _policy_status(loop).get("lastTrigger"),
                       300, 2)
    counted = sum(float(a.get("hours") or 0) for a in trigger.get("anchors") or [])
    loop.event("finetune", f"RetrainPolicy {m.POLICY} created FineTuneJob {trigger['fineTuneJob']}",
               f"{counted:.4f} h of new good audio (its filters) ≥ minNewHours {need:.4f} h; audio recorded "
               f"before {trigger['cutoff']} goes to this job")
    # The streamers keep recording during the releases: their new audio would cross the scaled-down threshold
    # again and start a second training on the two shared cores. Suspend stops triggers, not releases.
    loop.cluster.kubectl("patch", "retrainpolicy", m.POLICY, "-n", m.NAMESPACE, "--type=merge",
                         "-p", json.dumps({"spec": {"suspend": True}}))
    loop.event("finetune", f"RetrainPolicy {m.POLICY} suspended for the rest of the run",
               "one training per demo run on two cores; suspend blocks new triggers, not the release of this "
               "job's model")
    job = str(trigger["fineTuneJob"])
    seen: list[str] = []

    def finished() -> dict[str, Any] | None:
        status = loop.get("finetunejob", job).get("status") or {}
        stage = status.get("stage")
        if stage and (not seen or seen[-1] != stage):
            seen.append(stage)
            loop.event("finetune", f"stage {stage}", str(status.get("message") or ""))
        return status if stage in ("Succeeded", "Failed") else None

    status = wait_for(f"FineTuneJob {job} to finish", finished, TRAIN_TIMEOUT_S, 3)
    if status["stage"] != "Succeeded":
        raise LoopError(f"FineTuneJob {job} failed: {status.get('message')}")
    metrics = status.get("metrics") or {}
    loop.facts["cer"] = {"base": metrics.get("baseCer"), "new": metrics.get("newCer")}
    model = str((status.get("producedModel") or {}).get("name") or TUNED_MODEL)
    wait_for(f"ASRModel {model} Ready",
             lambda: (loop.get("asrmodel", model).get("status") or {}).get("phase") == "Ready", 180, 2)
    image = (loop.get("asrmodel", model)["spec"].get("image") or {}).get("reference")
    loop.facts["image"] = image
    loop.event("finetune", f"ASRModel {model} published and verified; held-out CER base "
               f"{metrics.get('baseCer')} → new {metrics.get('newCer')}",
               f"evaluation gate passed; model image {image or '(none)'} in the stack's registry")


def _policy_status(loop: Loop) -> dict[str, Any]:
    return dict(loop.get("retrainpolicy", m.POLICY).get("status") or {})


def _reviewed_seconds(loop: Loop) -> float:
    from senseops_common.layout import iter_segment_records

    store = loop.store()
    return sum((r.end_ms - r.start_ms) / 1000 for s in streamers() for r in iter_segment_records(store, s.anchor_id))


# --- phases 5 and 6: releases while the streamers keep streaming ------------------------------------------------


def start_traffic(loop: Loop) -> None:
    """Streamers stream without end, and the sampler watches weights, shares and metrics."""
    from tests.procnode.workloads import RUNTIME_SECRET

    if loop.team is None:
        loop.team = StreamerTeam(loop.stream_url, RUNTIME_SECRET, streamers(), rounds=None).start()
    if loop.sampler is None:
        loop.sampler = Sampler(loop.recorder, loop.t0, loop.gateway_url, loop.stack["prometheus"]["url"],
                               m.NAMESPACE, weight=lambda: route_weight(loop),
                               candidate=lambda: loop.candidate_model, token=load_token(RUNTIME_SECRET),
                               clip_wav=load_clip()).start()


def load_token(secret: str) -> str:
    from senseops_runtime.auth import AuthConfig, issue_token

    return issue_token(AuthConfig(hs256_secret=secret), secret, "load-generator", "load-generator", ["transcribe"],
                       False, time.time(), 4 * 3600)


def load_clip() -> bytes:
    """A domain sentence as WAV: what the load generator sends again and again."""
    from senseops_common.speech import MANDARIN, synthesize
    from senseops_trainer.synthetic import wav_bytes

    return wav_bytes(synthesize(streamers()[0].lines[0], MANDARIN))


def route_weight(loop: Loop) -> int | None:
    if loop.candidate_backend is None:
        return None
    with contextlib.suppress(Exception):
        route = loop.get("httproute", m.ROUTE)
        refs = {r["name"]: r.get("weight", 1) for r in route["spec"]["rules"][0]["backendRefs"]}
        total = sum(refs.values())
        return round(100 * refs.get(loop.candidate_backend, 0) / total) if total else None
    return None


def follow_rollout(loop: Loop, phase: str, name: str) -> dict[str, Any]:
    """Follow a Rollout to its outcome, recording weights, steps, quality gate and analysis verdicts."""
    last: dict[str, Any] = {}
    measured: set[tuple[str, str]] = set()
    highest: dict[str, int] = loop.facts.setdefault("highest_weight", {})  # per Rollout, as its status confirmed

    def done() -> dict[str, Any] | None:
        status = loop.get("rollout", name).get("status") or {}
        for field_name in ("phase", "actualWeight", "currentStepIndex"):
            if status.get(field_name) != last.get(field_name):
                last[field_name] = status.get(field_name)
                if field_name == "actualWeight" and status.get(field_name) is not None:
                    highest[name] = max(highest.get(name, 0), int(status[field_name]))
                    loop.event(phase, f"weight {status[field_name]}% confirmed by the gateway",
                               str(status.get("message") or ""))
                elif field_name == "phase":
                    loop.event(phase, f"phase {status.get('phase')}", str(status.get("message") or ""))
        for item in status.get("measurements") or []:
            key = (str(item.get("metric")), str(item.get("at")))
            if key not in measured:
                measured.add(key)
                value = item.get("value")
                loop.event(phase, f"analysis {item.get('metric')}: {item.get('phase')} "
                           f"({'no data' if value is None else f'{value:.3f}'} {item.get('threshold') or ''})",
                           str(item.get("message") or ""))
        return status if status.get("outcome") in ("Promoted", "RolledBack") else None

    status: dict[str, Any] = wait_for(f"Rollout {name} to finish", done, ROLLOUT_TIMEOUT_S, 1)
    loop.event(phase, f"outcome {status['outcome']}", str(status.get("abortReason") or status.get("message") or ""))
    return status


def ensure_stable_serving(loop: Loop) -> None:
    """The stable runtime pod must be Ready before a release. On the process node a training pod has been
    seen to get the address of a running runtime pod (both pods then lose their network); a pod that is not
    Ready within a minute is replaced, and the timeline says so."""
    from tests.procnode.workloads import ready_endpoints

    def ready() -> bool:
        return bool(ready_endpoints(loop.cluster, m.NAMESPACE, m.DEPLOYMENT))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(2)
    pods = loop.get("pods", "-l", f"app.kubernetes.io/instance={m.DEPLOYMENT}")["items"]
    addresses = {p["metadata"]["name"]: p["status"].get("podIP") for p in loop.get("pods")["items"]}
    for pod in pods:
        name, ip = pod["metadata"]["name"], pod["status"].get("podIP")
        shared = [other for other, addr in addresses.items() if addr == ip and other != name]
        loop.cluster.kubectl("delete", "pod", name, "-n", m.NAMESPACE, "--wait=false")
        loop.event("release", f"stable runtime pod {name} not Ready: replaced",
                   f"its address {ip} is also held by {', '.join(shared)}" if shared else "not Ready for 60 s")
    wait_for("a Ready stable runtime pod", ready, READY_TIMEOUT_S)


def _find(loop: Loop, kind: str, name: str) -> dict[str, Any] | None:
    got = loop.cluster.kubectl("get", kind, name, "-n", m.NAMESPACE, "-o", "json", check=False)
    return dict(json.loads(got.stdout)) if got.returncode == 0 else None


def phase_release(loop: Loop) -> None:
    """The policy's release: its Rollout takes the new model 5 → 50 → 100 while the streamers stream; promoted."""
    ensure_stable_serving(loop)
    loop.candidate_backend = f"{FIRST_TRIGGER}-canary"
    start_traffic(loop)
    rollout = wait_for(f"the RetrainPolicy to create Rollout {FIRST_TRIGGER}",
                       lambda: _find(loop, "rollout", FIRST_TRIGGER), 300, 2)
    spec = rollout["spec"]
    loop.candidate_model = spec["candidateModel"]["name"]
    owner = next((o["kind"] for o in rollout["metadata"].get("ownerReferences") or []), "nobody")
    loop.event("release", f"Rollout {FIRST_TRIGGER} (owner: {owner} {m.POLICY}): {spec['stableModel']['name']} → "
               f"{loop.candidate_model}, quality gate, then 5% → 50% → 100% with analysis",
               f"the policy's release template, created when FineTuneJob {FIRST_TRIGGER} succeeded; gate: golden-set "
               f"CER of candidate ≤ stable + {m.GATE_MAX_DEGRADATION}; analysis: candidate/stable p95 RTF ≤ "
               f"{m.RTF_P95_VS_STABLE_MAX}, p95 final latency ≤ {m.FINAL_LATENCY_P95_VS_STABLE_MAX}")
    status = follow_rollout(loop, "release", FIRST_TRIGGER)
    loop.facts["release"] = status.get("outcome")
    def release_recorded() -> dict[str, Any] | None:
        policy = _policy_status(loop)
        return policy if (policy.get("lastRelease") or {}).get("phase") in ("Healthy", "Aborted") else None

    serving = wait_for("the RetrainPolicy to record what serves now", release_recorded, 120, 2)
    loop.event("release", f"RetrainPolicy {m.POLICY}: serving model {serving.get('servingModel')}",
               f"last release {serving['lastRelease']['rollout']} is {serving['lastRelease']['phase']}")


def _canary_replicas(loop: Loop, rollout: str) -> int:
    status = loop.get("deployment", f"{rollout}-canary").get("status") or {}
    return int(status.get("replicas") or 0)


def phase_planted(loop: Loop) -> None:
    """A planted bad candidate: a full-size random-init SenseVoice-Small on pods sized for the tiny model
    (garbage text, and every decode costs what the real model costs) — the quality gate or the analysis aborts
    it, and it is rolled back."""
    ensure_stable_serving(loop)
    start_traffic(loop)
    from tests.testmodel.build import build_fullsize_random

    model_dir = STATE / "planted-fullsize-random"
    if not (model_dir / "model.pt").exists():
        build_fullsize_random(model_dir)
    uri, sha = publish(loop, model_dir, PLANTED_MODEL)
    loop.apply(m.asr_model(PLANTED_MODEL, uri, sha))
    loop.event("planted", f"ASRModel {PLANTED_MODEL} published by hand (no FineTuneJob, so no evaluation gate)",
               "a full-size random-init model: what a wrong artifact in a release looks like")
    stable = str(_policy_status(loop).get("servingModel") or TUNED_MODEL)
    loop.candidate_backend, loop.candidate_model = f"{PLANTED_ROLLOUT}-canary", PLANTED_MODEL
    loop.apply(m.rollout(PLANTED_ROLLOUT, stable, PLANTED_MODEL, loop.stack["prometheus"]["url"]))
    loop.event("planted", f"Rollout {PLANTED_ROLLOUT} made by hand from the policy's release template: {stable} → "
               f"{PLANTED_MODEL}", "the same quality gate and analysis as every release")
    planted_at = loop.now()
    status = follow_rollout(loop, "planted", PLANTED_ROLLOUT)
    # The gateway's side of "never reached 100 %": the HTTPRoute weights the sampler read during this round.
    loop.facts["planted_route_weight_max"] = max(
        (x.candidate_weight for x in loop.recorder.samples if x.t >= planted_at and x.candidate_weight is not None),
        default=None)
    loop.facts["planted"] = status.get("outcome")
    loop.facts["rollback_reason"] = status.get("abortReason")
    rolled_back = time.monotonic()
    # Traffic after the rollback, through the candidate's scale-down: every stream and request must succeed.
    wait_for("the planted candidate scaled down", lambda: not _canary_replicas(loop, PLANTED_ROLLOUT), 300, 2)
    time.sleep(20)
    assert loop.team is not None and loop.sampler is not None
    errors = [e for r in loop.team.reports.values() for t, e in zip(r.error_times, r.errors, strict=True)
              if t >= rolled_back] + [e for t, e in loop.sampler.errors if t >= rolled_back]
    loop.facts["errors_after_rollback"] = len(errors)
    # Streams still on the candidate when its pods went were drained (1012) and resumed on stable: reconnects.
    loop.facts["stream_reconnects"] = sum(r.reconnects for r in loop.team.reports.values())
    loop.event("planted", f"{len(errors)} failed streams or requests from the rollback to 20 s after the "
               f"candidate's scale-down ({loop.facts['stream_reconnects']} stream reconnects in the run so far)",
               "; ".join(errors[:3]))


# --- the run ---------------------------------------------------------------------------------------------------


PHASE_FUNCTIONS: dict[str, Callable[[Loop], None]] = {
    "stack": phase_stack, "base": phase_base, "record": phase_record, "finetune": phase_finetune,
    "release": phase_release, "planted": phase_planted,
}


def stack_up() -> dict[str, Any]:
    status = subprocess.run([sys.executable, "-m", "tests.stack", "status"], cwd=ROOT, env=python_env(),
                            capture_output=True, text=True)
    if status.returncode != 0 or not STACK_STATE.exists():
        LOGS.mkdir(parents=True, exist_ok=True)
        with (LOGS / "stack.log").open("ab") as log:
            up = subprocess.run([sys.executable, "-m", "tests.stack", "up"], cwd=ROOT, env=python_env(), stdout=log,
                                stderr=subprocess.STDOUT)
        if up.returncode != 0:
            raise SystemExit(f"the stack did not start; see {LOGS / 'stack.log'}")
    return dict(json.loads(STACK_STATE.read_text()))


def report(loop: Loop) -> None:
    print("\n=== timeline ===")
    print(format_timeline(loop.recorder.events))
    if loop.team is not None:
        print("\n=== streamers (release phases) ===")
        print(format_reports(list(loop.team.reports.values())))
    if loop.sampler is not None:
        print(f"load generator: {loop.sampler.requests} transcribe requests through the gateway, "
              f"{len(loop.sampler.errors)} failed" + (f" (first: {loop.sampler.errors[0][1]})"
                                                      if loop.sampler.errors else ""))
    print("\n=== candidate weight over time ===")
    print(format_weights(loop.recorder.samples))
    print(format_samples(loop.recorder.samples))
    cer = loop.facts.get("cer")
    if cer:
        print(f"\nheld-out CER: base {cer['base']}  new {cer['new']}")
    if loop.facts.get("rollback_reason"):
        print(f"rollback reason: {loop.facts['rollback_reason']}")
    print("\n=== wall time per phase ===")
    print(format_phases(loop.recorder.phases))
    loop.recorder.dump(STATE / "run.json", {k: v for k, v in loop.facts.items() if k in FACTS})
    if loop.recorder.samples:
        chart = draw(loop.recorder.samples, loop.recorder.events, STATE / "loop.png")
        print(f"\nchart: {chart.relative_to(ROOT)}   events and samples: {(STATE / 'run.json').relative_to(ROOT)}")


def run(until: str, start: str = PHASES[0]) -> int:
    """Run the phases from ``start`` (a later one resumes on the objects an earlier run left) to ``until``."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a request log line per probe drowns the timeline

    def interrupted(signum: int, _frame: object) -> None:
        raise LoopError(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)  # a killed run still stops its streamers and prints its report
    STATE.mkdir(exist_ok=True)
    print("[stack] control plane, process node, MinIO, registry, Prometheus, gateway", flush=True)
    began = time.monotonic()
    stack = stack_up()
    loop = Loop(ClusterHandle(KUBECONFIG, ROOT / ".cluster" / "logs"), stack)
    loop.recorder.phase_done("stack up", time.monotonic() - began)
    if start != PHASES[0]:
        start_operator(loop)
    try:
        for name in PHASES[PHASES.index(start):PHASES.index(until) + 1]:
            print(f"[{name}] {(PHASE_FUNCTIONS[name].__doc__ or '').splitlines()[0]}", flush=True)
            began = time.monotonic()
            PHASE_FUNCTIONS[name](loop)
            loop.recorder.phase_done(name, time.monotonic() - began)
    finally:
        if loop.team is not None:
            loop.team.stop()
        if loop.sampler is not None:
            loop.sampler.stop()
        report(loop)
    return 0


def down() -> int:
    """Remove what the loop made; then stop the stack."""
    if STACK_STATE.exists() and KUBECONFIG.exists():
        stack = dict(json.loads(STACK_STATE.read_text()))
        loop = Loop(ClusterHandle(KUBECONFIG, None), stack)
        with contextlib.suppress(Exception):
            start_operator(loop)  # releases the finalizers of our objects
            reset_namespace(loop)
            reset_bucket(loop)
    stop_operator()
    subprocess.run([sys.executable, "-m", "tests.stack", "down"], cwd=ROOT, env=python_env(), check=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.loop", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the loop (up to --until)")
    run_parser.add_argument("--until", choices=PHASES, default=PHASES[-1])
    run_parser.add_argument("--from", dest="start", choices=PHASES, default=PHASES[0],
                            help="resume at this phase on what an earlier run left (development)")
    sub.add_parser("down", help="clean up everything the loop and the stack made")
    args = parser.parse_args(argv)
    try:
        return run(args.until, args.start) if args.command == "run" else down()
    except LoopError as err:
        print(f"\nthe loop stopped: {err}", file=sys.stderr)
        return 1
