"""kubectl is built from the pinned Kubernetes module, so the client matches the API server's version."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.controlplane import components as c
from tests.controlplane.cluster import bin_dir, kubectl_binary


def test_kubectl_is_a_tool_of_the_kubernetes_wrapper_module() -> None:
    gomod = (c.HERE / "go" / "kubernetes" / "go.mod").read_text()
    tools = re.search(r"^tool \((.*?)^\)", gomod, re.M | re.S)
    assert tools is not None
    assert "k8s.io/kubernetes/cmd/kubectl" in tools.group(1).split()


def test_kubectl_binary_prefers_the_override_then_the_built_one(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("SENSEOPS_KUBECTL", "/opt/custom/kubectl")
    assert kubectl_binary() == "/opt/custom/kubectl"
    monkeypatch.delenv("SENSEOPS_KUBECTL")
    monkeypatch.setenv("SENSEOPS_BIN", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make bins"):
        kubectl_binary()  # no fallback to a kubectl on PATH: those are outside the version-skew policy
    (tmp_path / "kubectl").write_text("")
    assert kubectl_binary() == str(tmp_path / "kubectl")


def test_built_kubectl_reports_the_pinned_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENSEOPS_KUBECTL", raising=False)
    kubectl = kubectl_binary()
    assert Path(kubectl).parent == bin_dir()
    out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    client = json.loads(out)["clientVersion"]
    assert client["gitVersion"] == c.pinned_versions()["KUBE_VERSION"]
    assert client["gitTreeState"] == "clean"
