"""The kustomize entry points are accepted by the real API server (server-side dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("entry", ["manifests/operator", "manifests/overlays/local", "manifests/overlays/tke"])
def test_kustomize_dry_run_server(local_cluster, entry: str) -> None:  # type: ignore[no-untyped-def]
    # Namespaced objects can only be dry-run into an existing namespace; CRDs must exist for samples.
    local_cluster.kubectl("create", "namespace", "senseops-system", check=False)
    out = local_cluster.kubectl("apply", "--dry-run=server", "-k", str(ROOT / entry)).stdout
    assert "deployment.apps/senseops-operator created (server dry run)" in out or "configured" in out, out
    assert "clusterrole.rbac.authorization.k8s.io/senseops-operator" in out


def test_operator_pod_is_locked_down() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests/operator/deployment.yaml").read_text()))
    pod = docs[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    assert docs[0]["spec"]["replicas"] == 1 and docs[0]["spec"]["strategy"]["type"] == "Recreate"


def test_rbac_grants_no_wildcards_and_no_secrets() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests/operator/rbac.yaml").read_text()))
    rules = next(d for d in docs if d["kind"] == "ClusterRole")["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "secrets" not in rule["resources"]
        assert "delete" not in rule["verbs"]
