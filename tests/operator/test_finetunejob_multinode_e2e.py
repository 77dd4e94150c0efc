"""A multi-node FineTuneJob end to end: ``resources.nodes: 2, gpus: 0`` → the operator renders an Indexed Job
and a headless Service; two trainer pods on the process node meet at pod 0's c10d rendezvous by name,
fine-tune the tiny model as two gloo ranks of FunASR's own trainer (gradients all-reduced: both pods end
with the same weights), pod 0 evaluates and packages, and the FineTuneJob succeeds with its ASRModel."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from senseops_common.storage import StoreConfig, open_store
from senseops_trainer import synthetic
from tests.operator.test_finetunejob_e2e import (  # noqa: F401  (setup is a fixture)
    TRAIN_TIMEOUT_S,
    Setup,
    copy_session,
    fine_tune_job,
    setup,
)
from tests.procnode.launcher import ProcessNodeHandle

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
NAME = "multi"


def _slice_hostnames(ready: Setup, service: str) -> set[str]:
    slices = ready.cluster.get_json("endpointslices", "-n", ready.namespace,
                                    "-l", f"kubernetes.io/service-name={service}")["items"]
    return {e.get("hostname", "") for s in slices for e in s.get("endpoints") or []}


def _train_done_events(process_node: ProcessNodeHandle, namespace: str, job: str) -> dict[int, dict[str, Any]]:
    """The trainer's "train done" progress line of each index (from the pods' container logs)."""
    done: dict[int, dict[str, Any]] = {}
    for index in (0, 1):
        for log in process_node.state_dir.glob(f"pods/{namespace}_{job}-{index}-*/logs/trainer.log"):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"stage": "train"' in line and '"event": "done"' in line:
                    done[index] = json.loads(line)
    return done


def test_two_cpu_pods_train_as_one_world_and_the_job_succeeds(setup: Setup,  # noqa: F811
                                                              process_node: ProcessNodeHandle) -> None:
    store = open_store(f"s3://{setup.bucket}/", StoreConfig.from_env(setup.store_env))
    for session in synthetic.SESSION_TS:
        copy_session(setup.staging, store, session)
    job = fine_tune_job(setup, NAME, 0.001, "multi-model", minImprovement=0.0)
    job["spec"]["resources"] = {"gpus": 0, "nodes": 2, "cpu": "1", "memory": "4Gi"}
    # Half the single-pod test's epochs: enough for the tiny model to beat the base on the golden set.
    job["spec"]["hyperparameters"]["epochs"] = 6
    setup.apply(job)

    service, train_job = f"{NAME}-workers", f"{NAME}-train"
    hostnames: set[str] = set()
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = setup.get("finetunejob", NAME)
        if (obj.get("status") or {}).get("stage") in ("Succeeded", "Failed"):
            break
        # While the pods run, the headless Service publishes both, by host name (not-ready included).
        if len(hostnames) < 2:
            hostnames |= _slice_hostnames(setup, service)
        time.sleep(2)
    status = obj.get("status") or {}
    assert status.get("stage") == "Succeeded", (status, setup.operator.log_tail(), process_node.container_logs())
    assert {f"{train_job}-0", f"{train_job}-1"} <= hostnames, hostnames

    rendered = setup.get("job", train_job)["spec"]
    assert (rendered["completionMode"], rendered["completions"], rendered["parallelism"]) == ("Indexed", 2, 2)
    svc = setup.get("service", service)
    assert svc["spec"]["clusterIP"] == "None" and svc["metadata"]["ownerReferences"][0]["kind"] == "FineTuneJob"
    pods = setup.cluster.get_json("pods", "-n", setup.namespace, "-l", f"job-name={train_job}")["items"]
    succeeded = [p for p in pods if p["status"].get("phase") == "Succeeded"]
    assert sorted(p["spec"]["hostname"] for p in succeeded) == [f"{train_job}-0", f"{train_job}-1"]

    done = _train_done_events(process_node, setup.namespace, train_job)
    assert set(done) == {0, 1}, done
    assert [done[i]["node_rank"] for i in (0, 1)] == [0, 1] and done[0]["world_size"] == 2
    # Gradients were all-reduced across the pods: both ranks hold the same weights after training.
    assert done[0]["final_weights_sha256"] and done[0]["final_weights_sha256"] == done[1]["final_weights_sha256"]
    assert done[0]["checkpoints_digested"] == done[1]["checkpoints_digested"] == 6  # one per epoch
    # Pod 0 evaluated and packaged; the model was published.
    model = setup.get("asrmodel", "multi-model")
    assert model["spec"]["lineage"]["fineTuneJob"] == NAME
    assert store.exists(f"models/multi-model/{NAME}/MANIFEST.sha256")
