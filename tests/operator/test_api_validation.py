"""On the real API server: the samples are accepted and shown by `kubectl get asr`, and every invalid
resource in cases.py is refused with a message naming the bad field."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator.cases import CASES, Case, asr_model, build, fine_tune_job, rollout

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crds_installed(local_cluster):  # type: ignore[no-untyped-def]
    local_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    for name in ("asrmodels", "finetunejobs", "rollouts", "retrainpolicies"):
        local_cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}.senseops.dev", "--timeout=60s")
    return local_cluster


@pytest.fixture
def namespace(crds_installed) -> Iterator[str]:  # type: ignore[no-untyped-def]
    ns = f"val-{secrets.token_hex(3)}"
    crds_installed.kubectl("create", "namespace", ns)
    yield ns
    crds_installed.kubectl("delete", "namespace", ns, "--wait=false")


def test_crds_are_established_with_categories(crds_installed) -> None:  # type: ignore[no-untyped-def]
    out = crds_installed.kubectl("api-resources", "--api-group=senseops.dev", "-o", "wide").stdout
    for kind, short in (("ASRModel", "asrm"), ("FineTuneJob", "ftj"), ("Rollout", "asrro")):
        line = next(line for line in out.splitlines() if kind in line)
        assert short in line and "asr" in line.split()[-1]


def test_samples_apply_and_list_with_printer_columns(crds_installed, namespace: str) -> None:  # type: ignore[no-untyped-def]
    crds_installed.kubectl("apply", "-n", namespace, "-k", str(ROOT / "manifests" / "samples"))
    out = crds_installed.kubectl("get", "asr", "-n", namespace).stdout
    assert "asrmodel.senseops.dev/sensevoice-small-base" in out
    assert "finetunejob.senseops.dev/anchor-1001-nov" in out
    assert "rollout.senseops.dev/asr-inference" in out
    header_lines = [line for line in out.splitlines() if line.startswith("NAME")]
    assert any(re.search(r"VERSION\s+FORMAT\s+PHASE\s+VERIFIED\s+AGE", h) for h in header_lines)
    assert any(re.search(r"BASE\s+OUTPUT\s+GPUS\s+PHASE\s+STAGE\s+DATA\s+STEP\s+AGE", h) for h in header_lines)
    assert any(re.search(r"STABLE\s+CANDIDATE\s+WEIGHT\s+STEP\s+PHASE\s+AGE", h) for h in header_lines)
    # Defaults from the models are applied by the API server.
    ftj = crds_installed.get_json("finetunejob", "anchor-1001-nov", "-n", namespace)
    assert ftj["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == 86400
    assert ftj["spec"]["evaluationGate"]["metric"] == "cer"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_resource_is_refused(crds_installed, namespace: str, case: Case) -> None:  # type: ignore[no-untyped-def]
    name = f"x-{secrets.token_hex(3)}"
    valid, invalid = build(case, name)
    if case.update:
        crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(valid))
    result = crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(invalid), check=False)
    assert result.returncode != 0, f"{case.id}: the API server accepted an invalid object"
    message = result.stderr
    assert "is invalid" in message or "Invalid value" in message or "Required value" in message, message
    assert case.field in message, f"{case.id}: refusal does not name {case.field!r}: {message}"
    if not case.update:
        kind = invalid["kind"].lower()
        got = crds_installed.kubectl("get", kind, valid["metadata"]["name"], "-n", namespace, check=False)
        assert got.returncode != 0, f"{case.id}: object exists after refusal"


def test_valid_objects_of_every_kind_are_accepted(crds_installed, namespace: str) -> None:  # type: ignore[no-untyped-def]
    for obj in (asr_model("ok-model"), fine_tune_job("ok-job"), rollout("ok-rollout")):
        crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


@pytest.mark.parametrize("make", [asr_model, fine_tune_job, rollout], ids=lambda f: f.__name__)
def test_updates_that_keep_the_spec_are_accepted(crds_installed, namespace: str, make) -> None:  # type: ignore[no-untyped-def]
    """Immutability rules must not block what controllers do: labels, finalizers, status writes."""
    obj = make(f"upd-{secrets.token_hex(3)}")
    name, kind = obj["metadata"]["name"], obj["kind"].lower()
    crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    crds_installed.kubectl("label", kind, name, "-n", namespace, "team=asr")
    crds_installed.kubectl("patch", kind, name, "-n", namespace, "--type=merge",
                           "-p", '{"metadata": {"finalizers": ["senseops.dev/finalizer"]}}')
    crds_installed.kubectl("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge",
                           "-p", '{"status": {"phase": "Pending", "observedGeneration": 1}}')
    got = crds_installed.get_json(kind, name, "-n", namespace)
    assert got["metadata"]["labels"]["team"] == "asr" and got["status"]["phase"] == "Pending"
    crds_installed.kubectl("patch", kind, name, "-n", namespace, "--type=merge",
                           "-p", '{"metadata": {"finalizers": null}}')


def test_finetunejob_run_policy_may_change(crds_installed, namespace: str) -> None:  # type: ignore[no-untyped-def]
    job = fine_tune_job("suspendable")
    crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job))
    crds_installed.kubectl("patch", "finetunejob", "suspendable", "-n", namespace, "--type=merge",
                           "-p", '{"spec": {"runPolicy": {"suspend": true}}}')
    assert crds_installed.get_json("finetunejob", "suspendable", "-n", namespace)["spec"]["runPolicy"]["suspend"]


def test_at_least_thirty_invalid_cases_cover_every_kind() -> None:
    assert len(CASES) >= 30
    assert {c.id.split("-")[0] for c in CASES} == {"asr", "ftj", "ro"}
