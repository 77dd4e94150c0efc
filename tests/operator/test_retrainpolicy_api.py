"""RetrainPolicy on the real API server: a valid policy is accepted with its defaults and listed by `kubectl get
rtp` / `kubectl get asr`; every invalid one below is refused with a message naming the field (and, for the
cross-field rules, saying what to change)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cases import _DELETE, Case, Obj, _set, build

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


def retrain_policy(name: str = "rtp-valid") -> Obj:
    return {
        "apiVersion": "senseops.dev/v1alpha1",
        "kind": "RetrainPolicy",
        "metadata": {"name": name},
        "spec": {
            "source": "s3://recordings/",
            "anchors": ["1001", "1002"],
            "minNewHours": 3,
            "template": {"spec": {"baseModel": {"name": "base"},
                                  "output": {"modelName": "tuned", "storeUri": "s3://models/"}}},
        },
    }


CASES: list[Case] = [
    Case("rtp-no-template", retrain_policy, _set("spec.template", _DELETE), "spec.template"),
    Case("rtp-no-anchors", retrain_policy, _set("spec.anchors", []), "spec.anchors"),
    Case("rtp-duplicate-anchor", retrain_policy, _set("spec.anchors", ["1001", "1001"]), "spec.anchors[1]"),
    Case("rtp-bad-anchor", retrain_policy, _set("spec.anchors", ["a/b"]), "spec.anchors[0]"),
    Case("rtp-zero-hours", retrain_policy, _set("spec.minNewHours", 0), "spec.minNewHours"),
    Case("rtp-http-source", retrain_policy, _set("spec.source", "http://169.254.169.254/"), "spec.source"),
    Case("rtp-unknown-concurrency", retrain_policy, _set("spec.concurrencyPolicy", "Replace"),
         "spec.concurrencyPolicy"),
    Case("rtp-unknown-scope", retrain_policy, _set("spec.thresholdScope", "Mean"), "spec.thresholdScope"),
    Case("rtp-interval-too-short", retrain_policy, _set("spec.checkIntervalSeconds", 5), "spec.checkIntervalSeconds"),
    Case("rtp-negative-history", retrain_policy, _set("spec.successfulJobsHistoryLimit", -1),
         "spec.successfulJobsHistoryLimit"),
    Case("rtp-filters-inverted", retrain_policy,
         _set("spec.filters", {"minDurationSeconds": 20, "maxDurationSeconds": 10}), "spec.filters"),
    Case("rtp-template-zero-lr", retrain_policy, _set("spec.template.spec.hyperparameters", {"learningRate": 0}),
         "spec.template.spec.hyperparameters.learningRate"),
    Case("rtp-base-looks-produced", retrain_policy, _set("spec.template.spec.baseModel.name", "tuned-3"),
         "spec.template.spec.output.modelName"),
    Case("rtp-prefix-too-long", retrain_policy, _set("spec.template.spec.output.modelName", "m" * 60),
         "spec.template.spec.output.modelName"),
    Case("rtp-name-too-long", retrain_policy, _set("metadata.name", "p" * 41), "metadata.name"),
    Case("rtp-release-steps-decrease", retrain_policy,
         _set("spec.release", {"spec": {"target": {"deployment": "asr", "service": "asr", "port": 80},
                                        "steps": [{"setWeight": 50}, {"setWeight": 20}, {"setWeight": 100}],
                                        "trafficRouting": {"gatewayAPI": {"httpRoute": "asr"}}}}),
         "spec.release.spec.steps"),
    Case("rtp-unknown-base-from", retrain_policy, _set("spec.baseModelFrom", "Latest"), "spec.baseModelFrom"),
    Case("rtp-serving-base-without-release", retrain_policy, _set("spec.baseModelFrom", "Serving"),
         "spec.baseModelFrom"),
]
# What the cross-field rules tell the user to do.
ADVICE = {"rtp-base-looks-produced": "choose another output.modelName prefix",
          "rtp-serving-base-without-release": "set spec.release",
          "rtp-name-too-long": "at most 40 characters", "rtp-filters-inverted": "must be below"}


@pytest.fixture(scope="module")
def crds_installed(local_cluster):  # type: ignore[no-untyped-def]
    local_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    local_cluster.kubectl("wait", "--for=condition=Established", "crd/retrainpolicies.senseops.dev", "--timeout=60s")
    return local_cluster


@pytest.fixture
def namespace(crds_installed) -> Iterator[str]:  # type: ignore[no-untyped-def]
    ns = f"rtpv-{secrets.token_hex(3)}"
    crds_installed.kubectl("create", "namespace", ns)
    yield ns
    crds_installed.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_policy_is_refused(crds_installed, namespace: str, case: Case) -> None:  # type: ignore[no-untyped-def]
    _, invalid = build(case, f"x-{secrets.token_hex(3)}")
    result = crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(invalid), check=False)
    assert result.returncode != 0, f"{case.id}: the API server accepted an invalid object"
    message = result.stderr
    assert "is invalid" in message or "Invalid value" in message or "Required value" in message, message
    assert case.field in message, f"{case.id}: refusal does not name {case.field!r}: {message}"
    assert ADVICE.get(case.id, "") in message, message
    got = crds_installed.kubectl("get", "retrainpolicy", invalid["metadata"]["name"], "-n", namespace, check=False)
    assert got.returncode != 0, f"{case.id}: object exists after refusal"


def test_valid_policy_gets_defaults_and_is_listed(crds_installed, namespace: str) -> None:  # type: ignore[no-untyped-def]
    obj: dict[str, Any] = retrain_policy("nightly")
    crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    got = crds_installed.get_json("retrainpolicy", "nightly", "-n", namespace)["spec"]
    assert got["concurrencyPolicy"] == "Forbid" and got["suspend"] is False
    assert got["baseModelFrom"] == "Template"  # every trigger fine-tunes the template's base unless asked
    assert (got["successfulJobsHistoryLimit"], got["failedJobsHistoryLimit"], got["checkIntervalSeconds"]) == \
        (3, 1, 300)
    assert got["template"]["spec"]["hyperparameters"]["learningRate"] == 2e-5  # the FineTuneJob defaults apply
    out = crds_installed.kubectl("get", "rtp", "-n", namespace).stdout
    assert re.search(r"NAME\s+NEW\s+SUSPEND\s+ACTIVE\s+LAST JOB\s+LAST TRIGGER\s+PHASE\s+AGE", out), out
    assert "retrainpolicy.senseops.dev/nightly" in crds_installed.kubectl("get", "asr", "-n", namespace).stdout
    # The policy may change (like a CronJob): suspend it.
    crds_installed.kubectl("patch", "rtp", "nightly", "-n", namespace, "--type=merge", "-p",
                           '{"spec": {"suspend": true, "minNewHours": 5}}')
    assert crds_installed.get_json("rtp", "nightly", "-n", namespace)["spec"]["suspend"] is True


def test_the_sample_is_accepted(crds_installed, namespace: str) -> None:  # type: ignore[no-untyped-def]
    crds_installed.kubectl("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "samples" / "retrainpolicy.yaml"))
