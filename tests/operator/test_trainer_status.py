"""The trainer's progress reaches a FineTuneJob's status on the real API server (status subresource,
the CRD's field names), as it will from inside a training Job."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from kubernetes import client, config

from senseops_trainer.progress import FineTuneJobStatusSink
from tests.operator.cases import fine_tune_job

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


def test_progress_is_patched_into_finetunejob_status(local_cluster) -> None:  # type: ignore[no-untyped-def]
    local_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    local_cluster.kubectl("wait", "--for=condition=Established", "crd/finetunejobs.senseops.dev", "--timeout=60s")
    namespace = f"ftj-{secrets.token_hex(3)}"
    local_cluster.kubectl("create", "namespace", namespace)
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(fine_tune_job("progress")))

    api = client.CustomObjectsApi(config.new_client_from_config(str(local_cluster.kubeconfig)))
    sink = FineTuneJobStatusSink("progress", namespace, api)
    sink.publish({"epoch": 2, "step": 40, "totalSteps": 120, "loss": 1.25, "etaSeconds": 300,
                  "skippedBatches": 2, "updatedAt": "2026-11-24T08:00:00Z"}, force=True)

    job = local_cluster.get_json("finetunejob", "progress", "-n", namespace)
    # skippedBatches (the trainer's bad-batch count) survives the API server's pruning: it is in the schema.
    assert job["status"]["progress"] == {"epoch": 2, "step": 40, "totalSteps": 120, "loss": 1.25,
                                         "etaSeconds": 300, "skippedBatches": 2,
                                         "updatedAt": "2026-11-24T08:00:00Z"}
    wide = local_cluster.kubectl("get", "finetunejob", "progress", "-n", namespace, "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    assert "EPOCH" in header and "LOSS" in header
    # PHASE is still empty (no operator here), so compare by position from the end: ... EPOCH LOSS AGE.
    assert row.split()[-3:-1] == ["2", "1.25"]
    local_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
