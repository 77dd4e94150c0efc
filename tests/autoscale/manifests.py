"""Rendering and pure checks of the autoscaling manifests (KEDA install, the runtime's ScaledObject)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.controlplane.fixtures import kubectl_binary

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KEDA_ENTRY = "manifests/keda"
AUTOSCALE_ENTRY = "manifests/overlays/autoscale"


def render(entry: str) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of a repository entry point, as objects."""
    done = subprocess.run([kubectl_binary(), "kustomize", str(REPO / entry)], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {entry}: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def keda_crds() -> list[dict[str, Any]]:
    """KEDA's CRDs from the pinned Go module (tests/autoscale/keda-crds.sh)."""
    done = subprocess.run([str(HERE / "keda-crds.sh")], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"keda-crds.sh: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return dict(obj)
    raise AssertionError(f"no {kind}/{name} in the rendered objects")


def metric_names_in(query: str) -> set[str]:
    """The senseops_* series a PromQL query reads."""
    return set(re.findall(r"\bsenseops_[a-z_]+\b", query))


def wildcard_rules(role: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rules of a (Cluster)Role that grant '*' resources or verbs outside external.metrics.k8s.io."""
    out = []
    for rule in role.get("rules", []):
        if rule.get("apiGroups") == ["external.metrics.k8s.io"]:
            continue
        if "*" in rule.get("resources", []) or "*" in rule.get("verbs", []) or "*" in rule.get("apiGroups", []):
            out.append(dict(rule))
    return out


def shutdown_budget_s(deployment: Mapping[str, Any]) -> tuple[float, float]:
    """(preStop sleep + drain timeout + 5 s of shutdown, terminationGracePeriodSeconds) of the runtime: the rule
    of runtime/senseops_runtime/README.md "Graceful drain"."""
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    pre_stop = float(container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0))
    drain = float(env.get("SENSEOPS_DRAIN_TIMEOUT_S") or 0)
    return pre_stop + drain + 5.0, float(spec.get("terminationGracePeriodSeconds", 30))
