"""FineTuneJob failures that must not cost a run, on the real stack (operator under the manifests' RBAC,
the trainer really running as the Job's pods on the process node, MinIO):

- settings the trainer refuses (exit 64) fail the job at once: one pod, no retry, reason BadSettings;
- the training process killed mid-run is retried, and the new pod resumes from the checkpoint the trainer
  mirrored to the store (not from step 0); and the operator, killed (SIGKILL) and restarted at every stage
  of the same run, reaches the same end: Succeeded, exactly one Job, one ASRModel.

The second test does both in one training run to keep `make test` short: the kill and the restarts are
independent, and each assertion names which one it checks.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from senseops_common.storage import StoreConfig, open_store
from senseops_trainer import synthetic
from tests.common.waiting import wait_until
from tests.operator.test_finetunejob_e2e import (  # noqa: F401 - setup is a fixture
    TRAIN_TIMEOUT_S,
    Setup,
    copy_session,
    fine_tune_job,
    setup,
    watch_stages,
)
from tests.procnode.launcher import ProcessNodeHandle

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1800)]


def pods_of(stack: Setup, job: str) -> list[dict[str, Any]]:
    pods = stack.cluster.get_json("pods", "-n", stack.namespace, "-l", f"job-name={job}")["items"]
    return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])


def trainer_events(node: ProcessNodeHandle, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON progress lines the trainer container of this pod printed (its log file on the process node)."""
    meta = pod["metadata"]
    folder = node.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
    lines = []
    for path in (folder / "logs").glob("trainer*.log"):
        for text in path.read_text(errors="replace").splitlines():
            if not text.startswith("{"):
                continue
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue  # the last line of a live log can be half written
    return lines


def kill_mid_training(stack: Setup, node: ProcessNodeHandle, store: Any, checkpoint: str) -> int | None:
    """SIGKILL the trainer while FunASR still has an epoch to run and a checkpoint is in the store.

    The decision reads the trainer's own live log, not the FineTuneJob status: the status lags (the operator
    rechecks every few seconds and is restarted by this test), and on a loaded machine training could
    finish in that lag, leaving nothing to resume. Returns the step it was killed at, ``None`` if not yet.
    """
    pods = pods_of(stack, "resume-train")
    if not pods:
        return None
    pod = pods[-1]
    running = [c for c in pod["status"].get("containerStatuses", []) if "running" in c.get("state", {})]
    if not running:
        return None
    train = [e for e in trainer_events(node, pod) if e.get("stage") == "train"]
    steps = [e for e in train if e["event"] == "step"]
    if not steps or any(e["event"] in ("done", "skipped") for e in train):
        return None
    if steps[-1]["epoch"] >= steps[-1]["max_epoch"] or not store.exists(checkpoint):
        return None  # the last epoch, or nothing mirrored yet: too late or too early to test a resume
    os.killpg(int(running[0]["containerID"].removeprefix("procnode://")), signal.SIGKILL)
    return int(steps[-1]["total_step"])


def all_sessions_in(stack: Setup) -> None:
    store = open_store(f"s3://{stack.bucket}/", StoreConfig.from_env(stack.store_env))
    for session in synthetic.SESSION_TS:
        copy_session(stack.staging, store, session)


def test_settings_the_trainer_refuses_fail_at_once_without_a_retry(setup: Setup) -> None:  # noqa: F811
    all_sessions_in(setup)
    job = fine_tune_job(setup, "badset", 0.001, "badset-model")
    job["spec"]["runPolicy"]["backoffLimit"] = 3
    job["spec"]["hyperparameters"]["trainerSettings"] = {"train.no_such_knob": "1"}
    setup.apply(job)
    _, obj = watch_stages(setup, "badset", ("Succeeded", "Failed"), 300)
    status = obj["status"]
    succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert (status["stage"], succeeded["reason"]) == ("Failed", "BadSettings"), status
    assert len(pods_of(setup, "badset-train")) == 1  # exit 64 -> FailJob: backoffLimit 3 not used
    assert setup.cluster.kubectl("get", "asrmodel", "badset-model", "-n", setup.namespace,
                                 check=False).returncode != 0


def test_killed_trainer_resumes_from_its_checkpoint_and_operator_restarts_change_nothing(
    setup: Setup, process_node: ProcessNodeHandle,  # noqa: F811
) -> None:
    all_sessions_in(setup)
    job = fine_tune_job(setup, "resume", 0.001, "resumed-model")
    job["spec"]["runPolicy"]["backoffLimit"] = 2
    # Mirror every 0.5 s, files settled for 0.5 s, so a checkpoint reaches the store soon after FunASR writes it
    # (once per epoch). With the defaults' 2 s settle time, epochs of ~2.3 s on a quiet machine left model.pt
    # "still being written" at nearly every push, and no checkpoint was mirrored before training ended.
    job["spec"]["hyperparameters"]["trainerSettings"] = {"state_interval_s": "0.5", "state_settle_s": "0.5"}
    setup.apply(job)
    uid = setup.get("finetunejob", "resume")["metadata"]["uid"]
    store = open_store(f"s3://{setup.bucket}/", StoreConfig.from_env(setup.store_env))
    checkpoint = f"runs/{setup.namespace}/resume-{uid[:8]}/state/train/funasr/model.pt"

    stages: list[str] = []
    restarts: list[str] = []
    killed_at_step: int | None = None
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = setup.get("finetunejob", "resume")
        status = obj.get("status") or {}
        stage = status.get("stage")
        if stage and (not stages or stages[-1] != stage):
            stages.append(stage)
            if stage not in ("Succeeded", "Failed"):
                setup.operator.kill()  # at every stage: the operator dies and comes back
                setup.operator.start()
                restarts.append(stage)
        if stage in ("Succeeded", "Failed"):
            break
        if killed_at_step is None:  # from the trainer's live log: the status lags behind a short training
            killed_at_step = kill_mid_training(setup, process_node, store, checkpoint)
        time.sleep(0.5)
    status = obj.get("status") or {}
    detail = f"stages {stages}; status {json.dumps(status, indent=1)}\n{setup.operator.log_tail()}"
    assert status.get("stage") == "Succeeded", detail
    assert killed_at_step is not None, f"never saw a mirrored checkpoint during Training: {detail}"

    # The kill: a second pod, which restored the mirror and resumed FunASR from the checkpoint.
    pods = pods_of(setup, "resume-train")
    assert len(pods) == 2 and status["attempts"] == 2, [p["metadata"]["name"] for p in pods]
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    second = trainer_events(process_node, pods[1])
    restored = next(e for e in second if e["stage"] == "state" and e["event"] == "restored")
    assert restored["files"] > 0, restored
    assert {e["stage"] for e in second if e["event"] == "skipped"} >= {"collect", "filter", "normalize", "split"}
    assert any(e["stage"] == "train" and e["event"] == "resumed" for e in second), second[-10:]
    first_step = min(e["total_step"] for e in second if e["event"] == "step")
    assert first_step > 1, f"the second pod started training again at step {first_step}"
    info = json.loads(store.get_bytes("models/resumed-model/resume/training.json"))
    assert info["resumed"] is True
    assert not list(store.list(f"runs/{setup.namespace}/resume-{uid[:8]}/"))  # finished: the mirror is gone

    # The restarts: every stage saw one, and still exactly one training Job, one image build, one image tag
    # and one ASRModel.
    # A stage shorter than a restart (Packaging takes seconds) can pass while the operator is down, unseen by
    # this observer; every stage that was seen got its kill and restart.
    assert "Training" in restarts and len(set(restarts)) >= 3, restarts
    assert sorted(j["metadata"]["name"] for j in setup.cluster.get_json(
        "jobs", "-n", setup.namespace, "-l", "senseops.dev/finetunejob=resume")["items"]) == \
        ["resume-image", "resume-train"]
    repository = f"{setup.registry.host}/e2e/resumed-model"
    assert setup.registry.crane("ls", repository).stdout.split() == ["resume"]
    assert status["image"]["digest"] == setup.registry.crane("digest", f"{repository}:resume").stdout.strip()
    models = setup.cluster.get_json("asrmodels", "-n", setup.namespace, "-l", "senseops.dev/finetunejob=resume")
    assert [m["metadata"]["name"] for m in models["items"]] == ["resumed-model"]
    wait_until("the resumed model verified", lambda: (setup.get("asrmodel", "resumed-model").get("status") or {})
               .get("phase") == "Ready", timeout_s=120)
