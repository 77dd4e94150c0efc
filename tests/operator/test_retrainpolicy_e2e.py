"""RetrainPolicy end to end: the real operator (as the ServiceAccount and RBAC in manifests/, not cluster admin)
reads transcript-index lines that arrive in MinIO, shows the new hours, creates exactly one FineTuneJob from
the template when minNewHours is crossed, creates none while it runs under Forbid, audits the trigger in the
store, prunes finished jobs beyond the history limit, and deleting the policy removes its FineTuneJobs but
never an ASRModel.

The FineTuneJobs it creates name a base ASRModel that does not exist, so they stay Pending: no training runs
here (the training loop is tested in test_finetunejob_e2e.py)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from senseops_common.layout import AsrPartWriter, SegmentRecord, format_ts
from senseops_common.storage import StoreBase, StoreConfig, open_store
from tests.controlplane.fixtures import ClusterHandle
from tests.operator.operator_process import OperatorProcess
from tests.operator.test_finetunejob_e2e import operator_kubeconfig
from tests.servers.minio import MinioServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ANCHOR = "streamer-7"
SEGMENT_S = 20.0
NEED_HOURS = 0.05  # 9 segments of 20 s
WAIT_S = 120.0


@dataclass
class World:
    cluster: ClusterHandle
    namespace: str
    bucket: str
    store: StoreBase
    operator: OperatorProcess

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.cluster.get_json(kind, name, "-n", self.namespace)  # type: ignore[no-any-return]

    def jobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cluster.get_json("finetunejobs", "-n", self.namespace)["items"]
        return sorted(items, key=lambda j: j["metadata"]["name"])

    def wait(self, what: str, probe: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = probe()
            if got:
                return got
            time.sleep(1)
        policy = self.cluster.kubectl("get", "rtp", "-n", self.namespace, "-o", "yaml", check=False).stdout
        raise AssertionError(f"timed out waiting for {what}\n{policy}\noperator log:\n{self.operator.log_tail()}")


@pytest.fixture(scope="module")
def world(local_cluster: ClusterHandle, minio_server: MinioServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    local_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    for plural in ("asrmodels", "finetunejobs", "rollouts", "retrainpolicies"):
        local_cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.senseops.dev", "--timeout=60s")
    namespace = f"rtp-{secrets.token_hex(3)}"
    local_cluster.kubectl("create", "namespace", namespace)
    bucket = f"rtp-{secrets.token_hex(4)}"
    minio_server.create_bucket(bucket)
    store_env = minio_server.store_env()
    store = open_store(f"s3://{bucket}/", StoreConfig.from_env(store_env))
    kubeconfig = operator_kubeconfig(local_cluster, tmp_path_factory.mktemp("operator") / "kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator-log") / "operator.log", [namespace],
                               store_env).start()
    try:
        yield World(local_cluster, namespace, bucket, store, operator)
    finally:
        for kind in ("retrainpolicies", "rollouts", "finetunejobs", "asrmodels"):
            local_cluster.kubectl("delete", kind, "--all", "-n", namespace, "--timeout=60s", check=False)
        operator.stop()
        local_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def record_session(store: StoreBase, started: datetime, segments: int, confidence: float = 0.95) -> float:
    """Write one session's transcript index (no audio: the policy never reads it); return its hours."""
    ts = format_ts(started)
    writer = AsrPartWriter(store.put, ANCHOR, ts, writer=secrets.token_hex(3))
    for i in range(segments):
        start, length = int(i * SEGMENT_S * 1000), int(SEGMENT_S * 1000)
        writer.add(SegmentRecord(
            anchor_id=ANCHOR, session_ts=ts, segment_id=f"{ts}-{i}", start_ms=start, end_ms=start + length,
            text="直播间的朋友们大家好", lang="zh", emotion="NEUTRAL", event="Speech", confidence=confidence,
            model_name="base", model_version="v1", audio_key=f"raw/{ANCHOR}/{ts}/{ts}-{i}.wav", audio_sha256="0" * 64))
    writer.flush()
    return segments * SEGMENT_S / 3600


def policy(world: World, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "senseops.dev/v1alpha1", "kind": "RetrainPolicy", "metadata": {"name": name},
        "spec": {
            "source": f"s3://{world.bucket}/", "anchors": [ANCHOR, "quiet-anchor"], "minNewHours": NEED_HOURS,
            "checkIntervalSeconds": 10, "concurrencyPolicy": "Forbid", "failedJobsHistoryLimit": 0,
            "template": {"metadata": {"labels": {"team": "asr"}}, "spec": {
                "baseModel": {"name": "missing-base"},  # keeps the FineTuneJobs Pending: nothing trains here
                "hyperparameters": {"epochs": 1},
                "resources": {"gpus": 0, "cpu": "1", "memory": "1Gi"},
                "output": {"modelName": "streamer-7-model", "storeUri": f"s3://{world.bucket}/"},
                "storeSecret": "store"}},
        },
    }


def new_hours(world: World, name: str) -> float | None:
    data = (world.get("rtp", name).get("status") or {}).get("newData") or {}
    return data.get("hours")


def test_threshold_creates_exactly_one_job_and_forbid_holds_the_next(world: World) -> None:
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    below = record_session(world.store, past, 6)  # 0.033 h < 0.05 h
    world.cluster.kubectl("apply", "-n", world.namespace, "-f", "-", input=json.dumps(policy(world, "nightly")))

    # Below the threshold: hours shown per anchor, no FineTuneJob.
    status = world.wait("the first check", lambda: (world.get("rtp", "nightly").get("status") or {}).get("newData")
                        and world.get("rtp", "nightly")["status"])
    data = status["newData"]
    assert abs(data["hours"] - below) < 1e-3 and data["neededHours"] == NEED_HOURS
    assert {a["anchorId"]: a["segments"] for a in data["anchors"]} == {ANCHOR: 6, "quiet-anchor": 0}
    assert status["phase"] == "Watching" and "waiting for new audio" in status["message"]
    printed = world.cluster.kubectl("get", "rtp", "nightly", "-n", world.namespace).stdout
    assert data["summary"] in printed and "Watching" in printed
    assert world.jobs() == []

    # More recordings arrive: exactly one FineTuneJob, owned by the policy, its spec from the template.
    record_session(world.store, past + timedelta(minutes=30), 6)  # 0.067 h in all
    jobs = world.wait("a FineTuneJob", world.jobs)
    assert [j["metadata"]["name"] for j in jobs] == ["nightly-1"]
    ftj, rtp = jobs[0], world.get("rtp", "nightly")
    owner = ftj["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("RetrainPolicy", "nightly", rtp["metadata"]["uid"])
    labels = ftj["metadata"]["labels"]
    assert labels["team"] == "asr" and labels["senseops.dev/retrainpolicy"] == "nightly"
    spec = ftj["spec"]
    assert spec["baseModel"] == {"name": "missing-base"} and spec["hyperparameters"]["epochs"] == 1
    assert spec["output"]["modelName"] == "streamer-7-model-1" and spec["output"]["version"] == "nightly-1"
    assert spec["dataset"]["anchorIds"] == [ANCHOR, "quiet-anchor"] and spec["storeSecret"] == "store"
    last = world.wait("the trigger in status", lambda: (world.get("rtp", "nightly").get("status") or {})
                      .get("lastTrigger"))
    assert last["fineTuneJob"] == "nightly-1" and spec["dataset"]["window"]["end"] == last["cutoff"]
    assert {a["anchorId"]: round(a["hours"], 3) for a in last["anchors"]} == {ANCHOR: 0.067, "quiet-anchor": 0}

    # The audit record in the store: who, what, when, how much.
    audit = json.loads(world.store.get_bytes(last["auditKey"]))
    assert last["auditKey"].startswith(f"audit/retrain/{world.namespace}/nightly/")
    assert audit["fineTuneJob"] == "nightly-1" and audit["actor"] == "senseops-operator"
    assert audit["policy"]["uid"] == rtp["metadata"]["uid"] and audit["time"] == last["time"]
    assert round(audit["newAudio"]["hoursPerAnchor"][ANCHOR], 3) == 0.067

    # More than enough new audio while nightly-1 is still Pending: Forbid creates nothing and says why.
    after = datetime.fromisoformat(last["cutoff"].replace("Z", "+00:00")) + timedelta(seconds=1)
    more = record_session(world.store, after, 12)  # 0.067 h after the cut-off
    status = world.wait("the blocked trigger", lambda: (s := world.get("rtp", "nightly").get("status") or {})
                        and (s.get("newData") or {}).get("hours", 0) > NEED_HOURS and s)
    assert abs(status["newData"]["hours"] - more) < 1e-3
    blocked = next(c for c in status["conditions"] if c["type"] == "TriggerBlocked")
    assert blocked["status"] == "True" and blocked["reason"] == "ConcurrencyForbid", blocked
    assert "nightly-1" in status["message"] and status["activeCount"] == 1 and status["phase"] == "Running"
    time.sleep(12)  # one more check interval: still no second job
    assert [j["metadata"]["name"] for j in world.jobs()] == ["nightly-1"]
    keys = [info.key for info in world.store.list(f"audit/retrain/{world.namespace}/nightly/")]
    assert keys == [last["auditKey"]]


def test_a_finished_job_lets_the_next_trigger_through_and_history_is_pruned(world: World) -> None:
    # nightly-1 fails (set by hand; its own handler leaves a terminal stage alone). The new audio from the
    # first test is still above the threshold, so nightly-2 follows, and failedJobsHistoryLimit 0 prunes nightly-1.
    def fail_first_and_look() -> bool:
        jobs = {j["metadata"]["name"]: j for j in world.jobs()}
        first = jobs.get("nightly-1")
        if first is not None and (first.get("status") or {}).get("stage") != "Failed":  # (again, if overwritten)
            world.cluster.kubectl("patch", "ftj", "nightly-1", "-n", world.namespace, "--subresource=status",
                                  "--type=merge", "-p", '{"status": {"stage": "Failed", "phase": "Failed"}}',
                                  check=False)  # it may be pruned meanwhile
        return list(jobs) == ["nightly-2"]

    world.wait("nightly-2 to replace nightly-1", fail_first_and_look)
    status = world.get("rtp", "nightly")["status"]
    assert status["lastTrigger"]["fineTuneJob"] == "nightly-2" and status["lastTrigger"]["number"] == 2
    assert len(list(world.store.list(f"audit/retrain/{world.namespace}/nightly/"))) == 2


def test_a_trigger_whose_status_write_was_lost_is_adopted_after_a_restart_not_repeated(world: World) -> None:
    # Allow: only the trigger bookkeeping stands between a second look and a second FineTuneJob.
    obj = policy(world, "again")
    obj["spec"].update({"anchors": [ANCHOR], "minNewHours": 0.1, "concurrencyPolicy": "Allow"})
    world.cluster.kubectl("apply", "-n", world.namespace, "-f", "-", input=json.dumps(obj))

    def own_jobs() -> list[str]:
        return [j["metadata"]["name"] for j in world.jobs()
                if j["metadata"]["labels"].get("senseops.dev/retrainpolicy") == "again"]

    first = world.wait("the first trigger", lambda: (world.get("rtp", "again").get("status") or {})
                       .get("lastTrigger"))
    assert own_jobs() == ["again-1"]
    # The operator stops, and the status it wrote is lost (as if it died between creating and recording).
    world.operator.stop()
    world.cluster.kubectl("patch", "rtp", "again", "-n", world.namespace, "--subresource=status", "--type=merge",
                          "-p", '{"status": {"lastTrigger": null, "newData": null}}')
    world.operator.start()
    last = world.wait("the adopted trigger", lambda: (world.get("rtp", "again").get("status") or {})
                      .get("lastTrigger"))
    assert (last["fineTuneJob"], last["cutoff"], last["auditKey"]) == \
        (first["fineTuneJob"], first["cutoff"], first["auditKey"])
    time.sleep(12)  # another check interval
    assert own_jobs() == ["again-1"]
    assert [info.key for info in world.store.list(f"audit/retrain/{world.namespace}/again/")] == [first["auditKey"]]
    reasons = world.cluster.kubectl("get", "events", "-n", world.namespace, "--field-selector",
                                    "involvedObject.name=again", "-o", "jsonpath={.items[*].reason}").stdout
    assert "TriggerRecovered" in reasons.split(), reasons
    world.cluster.kubectl("delete", "rtp", "again", "-n", world.namespace, "--timeout=60s")
    world.wait("again-1 to go with its policy", lambda: own_jobs() == [])


def test_a_succeeded_job_is_released_by_exactly_one_rollout_from_the_template(world: World) -> None:
    # Enough audio for this policy's first trigger (the earlier tests' sessions count too).
    record_session(world.store, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3), 12)
    obj = policy(world, "release")
    obj["spec"]["anchors"] = [ANCHOR]
    obj["spec"]["release"] = {
        "metadata": {"labels": {"stage": "canary"}},
        "spec": {"target": {"deployment": "asr", "service": "asr", "port": 80},
                 "steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 100}],
                 "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}}},
    }
    world.cluster.kubectl("apply", "-n", world.namespace, "-f", "-", input=json.dumps(obj))
    world.wait("release-1", lambda: any(j["metadata"]["name"] == "release-1" for j in world.jobs()))
    assert world.cluster.get_json("rollouts", "-n", world.namespace)["items"] == []  # nothing to release yet
    # The job succeeds (set by hand: no training here) and names the model it published. Its own handler may
    # write its Pending status over ours once more (its base model does not exist): set it until it holds.
    succeeded = {"status": {"stage": "Succeeded", "phase": "Succeeded",
                            "producedModel": {"name": "streamer-7-model-1"}}}

    def succeed_and_look() -> dict[str, Any] | None:
        if (world.get("ftj", "release-1").get("status") or {}).get("stage") != "Succeeded":
            world.cluster.kubectl("patch", "ftj", "release-1", "-n", world.namespace, "--subresource=status",
                                  "--type=merge", "-p", json.dumps(succeeded))
        return next((r for r in world.cluster.get_json("rollouts", "-n", world.namespace)["items"]
                     if r["metadata"]["name"] == "release-1"), None)

    rollout = world.wait("the release Rollout", succeed_and_look)
    policy_obj = world.get("rtp", "release")
    owner = rollout["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("RetrainPolicy", policy_obj["metadata"]["uid"])
    assert rollout["metadata"]["labels"]["stage"] == "canary"
    assert rollout["spec"]["stableModel"] == {"name": "missing-base"}  # the template's base model serves now
    assert rollout["spec"]["candidateModel"] == {"name": "streamer-7-model-1"}
    assert [s.get("setWeight") for s in rollout["spec"]["steps"]] == [5, None, 100]
    last = world.wait("lastRelease", lambda: (world.get("rtp", "release").get("status") or {}).get("lastRelease"))
    assert (last["rollout"], last["stableModel"], last["candidateModel"]) == \
        ("release-1", "missing-base", "streamer-7-model-1")
    time.sleep(12)  # another check interval: still exactly one release
    names = [r["metadata"]["name"] for r in world.cluster.get_json("rollouts", "-n", world.namespace)["items"]]
    assert names == ["release-1"]
    world.cluster.kubectl("delete", "rtp", "release", "-n", world.namespace, "--timeout=60s")


def test_serving_base_model_flows_from_the_policy_into_its_fine_tune_job(world: World) -> None:
    # baseModelFrom Serving: before any release, what serves is the release's stableModel, so the first job
    # fine-tunes that and not the template's base (later triggers: tests/operator/test_retrainpolicy_release.py).
    record_session(world.store, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2), 12)
    obj = policy(world, "continual")
    obj["spec"].update({"anchors": [ANCHOR], "baseModelFrom": "Serving", "release": {
        "stableModel": {"name": "prod-v7"},
        "spec": {"target": {"deployment": "asr", "service": "asr", "port": 80},
                 "steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 100}],
                 "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}}}}})
    world.cluster.kubectl("apply", "-n", world.namespace, "-f", "-", input=json.dumps(obj))
    job = world.wait("continual-1", lambda: next((j for j in world.jobs() if j["metadata"]["name"] == "continual-1"),
                                                 None))
    assert job["spec"]["baseModel"] == {"name": "prod-v7"}
    last = world.wait("lastTrigger", lambda: (world.get("rtp", "continual").get("status") or {}).get("lastTrigger"))
    record = json.loads(world.store.get_bytes(last["auditKey"]))
    assert record["baseModel"] == "prod-v7" and record["fineTuneJob"] == "continual-1"
    world.cluster.kubectl("delete", "rtp", "continual", "-n", world.namespace, "--timeout=60s")
    world.wait("continual-1 to go with its policy",
               lambda: not any(j["metadata"]["name"] == "continual-1" for j in world.jobs()))


def test_deleting_the_policy_removes_its_jobs_but_never_a_model(world: World) -> None:
    # A model published by one of its jobs is linked by a label only (as FineTuneJob publishes it).
    world.cluster.kubectl("apply", "-n", world.namespace, "-f", "-", input=json.dumps({
        "apiVersion": "senseops.dev/v1alpha1", "kind": "ASRModel",
        "metadata": {"name": "streamer-7-model-2", "labels": {"senseops.dev/finetunejob": "nightly-2"}},
        "spec": {"version": "nightly-2", "artifact": {"uri": f"s3://{world.bucket}/models/x/", "sha256": "ab" * 32}}}))
    world.cluster.kubectl("delete", "rtp", "nightly", "-n", world.namespace, "--timeout=60s")
    world.wait("the garbage collector to remove the policy's FineTuneJobs", lambda: world.jobs() == [])
    assert world.get("asrmodel", "streamer-7-model-2")["metadata"]["name"] == "streamer-7-model-2"
