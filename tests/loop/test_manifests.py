"""The loop's objects parse as the operator's own models (the same pydantic classes the CRDs come from), so a
typo fails here rather than half-way through a demo run."""

from __future__ import annotations

from scripts.loop import manifests as m
from senseops_operator.models.asrmodel import ASRModelSpec
from senseops_operator.models.finetunejob import FineTuneJobSpec
from senseops_operator.models.rollout import RolloutSpec


def test_rollout_goes_5_50_100_with_analysis_after_each_pause() -> None:
    doc = m.rollout("release-1", "base", "tuned-1", "http://127.0.0.1:9090")
    spec = RolloutSpec.model_validate(doc["spec"])
    assert [s.set_weight for s in spec.steps if s.set_weight is not None] == [5, 50, 100]
    kinds = ["w" if s.set_weight is not None else "p" if s.pause else "a" for s in spec.steps]
    assert kinds == ["w", "p", "a", "w", "p", "a", "w"]
    assert spec.traffic_routing.gateway_api is not None and spec.traffic_routing.gateway_api.http_route == m.ROUTE
    templates = {metric.provider.prometheus.template for metric in spec.analysis.metrics}
    assert templates == {"rtf-p95-vs-stable", "p95-final-latency-vs-stable"}


def test_fine_tune_job_reads_the_streamers_anchors_and_the_held_out_set() -> None:
    doc = m.fine_tune_job("retrain-1", ["live-zh-a", "live-en-a"], 0.02, ("2026-11-28T00:00:00Z",
                          "2026-11-30T00:00:00Z"), "golden/held-out.jsonl", "tuned-1")
    spec = FineTuneJobSpec.model_validate(doc["spec"])
    dumped = spec.model_dump(by_alias=True, mode="json")
    assert dumped["dataset"]["anchorIds"] == ["live-zh-a", "live-en-a"]
    assert dumped["dataset"]["heldOut"]["goldenSetUri"] == "s3://senseops-loop/golden/held-out.jsonl"
    assert dumped["output"]["modelName"] == "tuned-1" and dumped["storeSecret"] == m.STORE_SECRET


def test_runtime_records_to_the_bucket_with_credentials_from_the_secret() -> None:
    deployment, _service = m.runtime("s3://senseops-loop/models/base/v1/", "ab" * 32, "/tmp/model")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SENSEOPS_RECORDING_ENABLED"] == "true"
    assert env["SENSEOPS_RECORDING_STORE_URI"] == "s3://senseops-loop/"
    assert env["SENSEOPS_MODEL_URI"].startswith("s3://") and env["SENSEOPS_MODEL_VERSION"] == m.BASE_MODEL
    assert not any(name.startswith("AWS_") for name in env)  # keys only through the Secret
    assert container["envFrom"] == [{"secretRef": {"name": m.STORE_SECRET}}]
    ASRModelSpec.model_validate(m.asr_model("base", "s3://senseops-loop/models/base/v1/", "ab" * 32)["spec"])


def test_selectors_leave_out_the_version_label_the_rollout_moves_on_promotion() -> None:
    deployment, service = m.runtime("s3://senseops-loop/models/base/v1/", "ab" * 32, "/tmp/model")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert m.VERSION_LABEL not in selector and m.VERSION_LABEL not in service["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["template"]["metadata"]["labels"][m.VERSION_LABEL] == m.BASE_MODEL
