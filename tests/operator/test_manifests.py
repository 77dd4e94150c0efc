"""The kustomize entry points are accepted by the real API server (server-side dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

@pytest.mark.cluster
@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("manifests/operator", ["deployment.apps/senseops-operator", "clusterrole.rbac.authorization.k8s.io/"]),
        ("manifests/overlays/local", ["deployment.apps/senseops-operator", "customresourcedefinition"]),
        ("manifests/overlays/tke", ["deployment.apps/senseops-operator", "deployment.apps/senseops-runtime",
                                    "ingress.networking.k8s.io/senseops-runtime"]),
        ("manifests/runtime", ["deployment.apps/senseops-runtime", "poddisruptionbudget.policy/senseops-runtime"]),
    ],
)
def test_kustomize_dry_run_server(local_cluster, entry: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    # Namespaced objects can only be dry-run into an existing namespace.
    for namespace in ("senseops-system", "senseops"):
        local_cluster.kubectl("create", "namespace", namespace, check=False)
    out = local_cluster.kubectl("apply", "--dry-run=server", "-k", str(ROOT / entry)).stdout
    for fragment in expected:
        assert fragment in out, out
    assert "(server dry run)" in out


@pytest.mark.parametrize("path", ["manifests/operator/deployment.yaml", "manifests/runtime/deployment.yaml"])
def test_pods_are_locked_down(path: str) -> None:
    docs = list(yaml.safe_load_all((ROOT / path).read_text()))
    pod = docs[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])


def test_operator_runs_one_replica_recreated() -> None:
    deployment = next(yaml.safe_load_all((ROOT / "manifests/operator/deployment.yaml").read_text()))
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"


def test_rbac_grants_no_wildcards_and_no_secrets() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests/operator/rbac.yaml").read_text()))
    rules = next(d for d in docs if d["kind"] == "ClusterRole")["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "secrets" not in rule["resources"]
        # The one delete: a RetrainPolicy removes its own finished FineTuneJobs beyond its history limits.
        assert "delete" not in rule["verbs"] or rule["resources"] == ["finetunejobs"]
