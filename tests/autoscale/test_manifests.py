"""The autoscaling manifests: KEDA installed least-privilege and non-root, the ScaledObject reads signals the
runtime really exports, scales up fast and down slowly, and scale-in leaves time for the drain."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from senseops_runtime.metrics import RuntimeMetrics
from tests.autoscale.manifests import (
    AUTOSCALE_ENTRY,
    KEDA_ENTRY,
    find,
    keda_crds,
    metric_names_in,
    render,
    shutdown_budget_s,
    wildcard_rules,
)


@pytest.fixture(scope="module")
def keda() -> list[dict[str, Any]]:
    return render(KEDA_ENTRY)


@pytest.fixture(scope="module")
def autoscale() -> list[dict[str, Any]]:
    return render(AUTOSCALE_ENTRY)


def test_keda_runs_non_root_with_read_only_root(keda: list[dict[str, Any]]) -> None:
    deployments = [o for o in keda if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"keda-operator", "keda-metrics-apiserver"}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["serviceAccountName"] == deployment["metadata"]["name"]
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert container["image"].endswith(":2.21.0"), container["image"]


def test_keda_rbac_has_no_wildcards_and_no_cluster_wide_secrets(keda: list[dict[str, Any]]) -> None:
    roles = [o for o in keda if o["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        assert wildcard_rules(role) == [], role["metadata"]["name"]
    for role in (o for o in roles if o["kind"] == "ClusterRole"):
        for rule in role["rules"]:
            assert "secrets" not in rule.get("resources", []), role["metadata"]["name"]
    operator = find(keda, "Deployment", "keda-operator")
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KEDA_RESTRICT_SECRET_ACCESS"] == "true"  # else KEDA needs the cluster-wide Secret read


def test_keda_serves_external_metrics_to_the_hpa_controller(keda: list[dict[str, Any]]) -> None:
    api = find(keda, "APIService", "v1beta1.external.metrics.k8s.io")
    assert api["spec"]["service"] == {"name": "keda-metrics-apiserver", "namespace": "keda", "port": 443}
    binding = find(keda, "ClusterRoleBinding", "keda-hpa-controller-external-metrics")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler", "namespace": "kube-system"}
    ]


def test_keda_crds_come_from_the_pinned_module() -> None:
    names = {crd["metadata"]["name"] for crd in keda_crds()}
    assert {"scaledobjects.keda.sh", "triggerauthentications.keda.sh"} <= names


def test_scaled_object_reads_signals_the_runtime_exports(autoscale: list[dict[str, Any]]) -> None:
    text = RuntimeMetrics().render().decode()
    exported = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    scaled = find(autoscale, "ScaledObject", "senseops-runtime")
    queries = [t["metadata"]["query"] for t in scaled["spec"]["triggers"]]
    read = set().union(*(metric_names_in(q) for q in queries))
    assert read == {"senseops_active_streams", "senseops_decode_busy_seconds_total"}
    assert read <= exported
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
        assert float(trigger["metadata"]["threshold"]) > 0


def test_scale_up_is_immediate_and_scale_down_stabilised(autoscale: list[dict[str, Any]]) -> None:
    scaled = find(autoscale, "ScaledObject", "senseops-runtime")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "senseops-runtime"
    assert 2 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 120
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in behavior["scaleDown"]["policies"])


def test_autoscaled_deployment_leaves_replicas_to_the_hpa_and_time_to_drain(autoscale: list[dict[str, Any]]) -> None:
    deployment = find(autoscale, "Deployment", "senseops-runtime")
    assert "replicas" not in deployment["spec"]
    needed, grace = shutdown_budget_s(deployment)
    assert needed <= grace, f"preStop + drain + shutdown = {needed} s does not fit the {grace} s grace period"
    pod = deployment["spec"]["template"]["metadata"]["annotations"]
    assert pod["prometheus.io/scrape"] == "true"  # the signals reach Prometheus
