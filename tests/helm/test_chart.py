"""The Helm chart: lint, render, same objects as kustomize, and a server-side dry run on the local cluster."""

from __future__ import annotations

import pytest
import yaml

from tests.helm.chart import CHART, REPO, helm, objects, render_chart, render_kustomize, values_args

# (values files, --set assignments, kustomize entries that must render the same objects)
EQUIVALENTS = {
    "defaults": ([], [], ["manifests/operator", "manifests/runtime"]),
    "local": ([], ["runtime.enabled=false", "operator.image.tag=dev"], ["manifests/overlays/local"]),
    "tke": (["values-tke.yaml"], [], ["manifests/overlays/tke"]),
    "tke-gpu": (["values-tke.yaml", "values-tke-gpu.yaml"], [], ["manifests/overlays/tke-gpu"]),
}


@pytest.mark.parametrize("case", sorted(EQUIVALENTS))
def test_helm_lint(case: str) -> None:
    values, sets, _ = EQUIVALENTS[case]
    out = helm("lint", "--strict", str(CHART), *values_args(values, sets)).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


@pytest.mark.parametrize("case", sorted(EQUIVALENTS))
def test_chart_renders_the_same_objects_as_kustomize(case: str) -> None:
    values, sets, entries = EQUIVALENTS[case]
    chart = objects(render_chart(values, sets))
    kustomize = objects(render_kustomize(*entries))
    assert sorted(chart) == sorted(kustomize)
    for key, want in kustomize.items():
        assert chart[key] == want, f"{key} differs between the chart and {entries}"


def test_crds_come_from_the_generated_folder() -> None:
    link = CHART / "crds"
    assert link.is_symlink() and link.resolve() == (REPO / "crds").resolve(), "chart crds/ must link to crds/"
    rendered = [d for d in yaml.safe_load_all(render_chart([], [])) if d and d["kind"] == "CustomResourceDefinition"]
    generated = [
        yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml")) if p.name != "kustomization.yaml"
    ]
    assert sorted(d["metadata"]["name"] for d in rendered) == sorted(d["metadata"]["name"] for d in generated)
    assert all(d in generated for d in rendered)


def test_helm_labels_on_every_chart_object() -> None:
    for doc in yaml.safe_load_all(render_chart([], [], include_crds=False)):
        if doc:
            assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm", doc["metadata"]["name"]


def test_http_route_to_the_runtime() -> None:
    sets = [
        "runtime.httpRoute.enabled=true",
        "runtime.httpRoute.parentRefs[0].name=senseops-gateway",
        "runtime.httpRoute.hostnames[0]=asr.example.com",
        "runtime.ingress.enabled=false",
    ]
    rendered = objects(render_chart([], sets, include_crds=False))
    route = rendered[("gateway.networking.k8s.io/v1", "HTTPRoute", "senseops", "senseops-runtime")]
    assert route["spec"]["parentRefs"] == [{"name": "senseops-gateway"}]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "senseops-runtime", "port": 8000}]
    assert not any(kind == "Ingress" for _, kind, _, _ in rendered)


def test_http_route_without_a_gateway_is_refused_with_a_sentence() -> None:
    done = helm("template", "senseops", str(CHART), "--set", "runtime.httpRoute.enabled=true", check=False)
    assert done.returncode != 0
    assert "runtime.httpRoute.parentRefs is empty" in done.stderr


@pytest.mark.cluster
@pytest.mark.parametrize("case", ["defaults", "tke", "tke-gpu"])
def test_chart_server_side_dry_run(local_cluster, case: str) -> None:  # type: ignore[no-untyped-def]
    values, sets, _ = EQUIVALENTS[case]
    # Namespaced objects can only be dry-run into namespaces that exist.
    for namespace in ("senseops-system", "senseops"):
        local_cluster.kubectl("create", "namespace", namespace, check=False)
    out = local_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=render_chart(values, sets)).stdout
    for fragment in (
        "deployment.apps/senseops-operator",
        "deployment.apps/senseops-runtime",
        "customresourcedefinition.apiextensions.k8s.io/rollouts.senseops.dev",
        "clusterrole.rbac.authorization.k8s.io/senseops-operator",
        "ingress.networking.k8s.io/",
    ):
        assert fragment in out, out
    assert out.count("(server dry run)") == len(objects(render_chart(values, sets))), out


@pytest.mark.cluster
@pytest.mark.parametrize("entry", ["manifests/overlays/tke", "manifests/overlays/tke-gpu"])
def test_tke_overlays_server_side_dry_run(local_cluster, entry: str) -> None:  # type: ignore[no-untyped-def]
    for namespace in ("senseops-system", "senseops"):
        local_cluster.kubectl("create", "namespace", namespace, check=False)
    out = local_cluster.kubectl("apply", "--dry-run=server", "-k", str(REPO / entry)).stdout
    assert "deployment.apps/senseops-runtime configured (server dry run)" in out or (
        "deployment.apps/senseops-runtime created (server dry run)" in out
    ), out
    assert out.count("(server dry run)") == len(objects(render_kustomize(entry))), out


@pytest.mark.cluster
def test_kind_overlay_server_side_dry_run(local_cluster) -> None:  # type: ignore[no-untyped-def]
    for namespace in ("senseops-system", "senseops"):
        local_cluster.kubectl("create", "namespace", namespace, check=False)
    out = local_cluster.kubectl("apply", "--dry-run=server", "-k", str(REPO / "manifests/kind")).stdout
    assert out.count("(server dry run)") == len(objects(render_kustomize("manifests/kind"))), out


def test_kind_config_is_a_kind_cluster_with_an_ingress_node_and_an_inference_worker() -> None:
    config = yaml.safe_load((REPO / "manifests/kind/kind-config.yaml").read_text())
    assert (config["apiVersion"], config["kind"]) == ("kind.x-k8s.io/v1alpha4", "Cluster")
    roles = {n["role"]: n for n in config["nodes"]}
    assert "ingress-ready=true" in roles["control-plane"]["kubeadmConfigPatches"][0]
    assert {m["containerPort"] for m in roles["control-plane"]["extraPortMappings"]} == {80, 443}
    assert roles["worker"]["labels"]["senseops.dev/node-pool"] == "inference"
    # The overlay's runtime is scheduled where the kind config puts the label.
    runtime = next(
        d
        for d in objects(render_kustomize("manifests/kind")).values()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "senseops-runtime"
    )
    assert runtime["spec"]["template"]["spec"]["nodeSelector"] == {"senseops.dev/node-pool": "inference"}
