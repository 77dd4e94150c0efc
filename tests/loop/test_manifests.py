"""The loop's objects parse as the operator's own models (the same pydantic classes the CRDs come from), so a
typo fails here rather than half-way through a demo run."""

from __future__ import annotations

import json

from scripts.loop import manifests as m
from senseops_operator.models.asrmodel import ASRModelSpec
from senseops_operator.models.retrainpolicy import RetrainPolicySpec
from senseops_operator.models.rollout import RolloutSpec
from senseops_operator.providers.golden import parse_manifest


def test_rollout_goes_5_50_100_with_analysis_after_each_pause_and_the_quality_gate() -> None:
    doc = m.rollout("planted-1", "tuned-1", "planted-slow", "http://127.0.0.1:9090")
    spec = RolloutSpec.model_validate(doc["spec"])
    assert (spec.stable_model.name, spec.candidate_model.name) == ("tuned-1", "planted-slow")
    assert [s.set_weight for s in spec.steps if s.set_weight is not None] == [5, 50, 100]
    kinds = ["w" if s.set_weight is not None else "p" if s.pause else "a" for s in spec.steps]
    assert kinds == ["w", "p", "a", "w", "p", "a", "w"]
    assert spec.traffic_routing.gateway_api is not None and spec.traffic_routing.gateway_api.http_route == m.ROUTE
    assert spec.analysis is not None
    templates = {metric.provider.prometheus.template for metric in spec.analysis.metrics
                 if metric.provider.prometheus is not None}
    assert templates == {"rtf-p95-vs-stable", "p95-final-latency-vs-stable"}
    gate = spec.quality_gate
    assert gate is not None and gate.golden_set.uri == m.store_uri() and gate.golden_set.manifest == m.GOLDEN_MANIFEST
    assert gate.metric == "cer" and gate.failure_limit == 0


def test_policy_trains_on_the_streamers_builds_an_image_and_releases_with_the_same_template() -> None:
    doc = m.retrain_policy(["live-zh-a", "live-en-a"], 0.02, "2026-11-28T00:00:00Z", "golden/held-out.jsonl",
                           "127.0.0.1:5000", "http://127.0.0.1:9090")
    spec = RetrainPolicySpec.model_validate(doc["spec"])
    dumped = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert dumped["anchors"] == ["live-zh-a", "live-en-a"] and dumped["source"] == m.store_uri()
    assert dumped["minNewHours"] == 0.02 and dumped["thresholdScope"] == "Total"
    template = dumped["template"]["spec"]
    assert template["dataset"]["heldOut"]["goldenSetUri"] == "s3://senseops-loop/golden/held-out.jsonl"
    assert template["output"]["modelName"] == m.TUNED_PREFIX and template["storeSecret"] == m.STORE_SECRET
    assert template["image"] == {"registry": "127.0.0.1:5000", "repository": m.IMAGE_REPOSITORY,
                                 "pushSecret": m.PUSH_SECRET}
    # the policy's release and the planted round's Rollout share one template
    planted = m.rollout("planted-1", "tuned-1", "planted-slow", "http://127.0.0.1:9090")["spec"]
    assert {k: v for k, v in planted.items() if k not in ("stableModel", "candidateModel")} == \
        doc["spec"]["release"]["spec"]


def test_golden_manifest_lists_the_held_out_clips_relative_to_the_bucket() -> None:
    lines = "".join(json.dumps({"audio_key": f"raw/held-out/t/held-00{i}.wav", "text": t, "lang": lang,
                                "segment_id": f"held-00{i}"}, ensure_ascii=False) + "\n"
                    for i, (lang, t) in enumerate([("zh", "秒杀"), ("en", "flash sale")]))
    rows = [json.loads(line) for line in m.golden_manifest(lines).splitlines()]
    assert rows == [{"key": "raw/held-out/t/held-000.wav", "text": "秒杀", "language": "zh"},
                    {"key": "raw/held-out/t/held-001.wav", "text": "flash sale", "language": "en"}]
    assert parse_manifest(m.golden_manifest(lines), max_clips=5)[1].language == "en"


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
