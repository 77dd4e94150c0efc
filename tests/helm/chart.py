"""Render the Helm chart and the kustomize entry points, and compare their objects.

The chart adds Helm's bookkeeping labels; everything else must be the same object for the same settings.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.controlplane.fixtures import kubectl_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "manifests" / "helm" / "senseops"
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance")


def helm_binary() -> Path:
    """helm built from its pinned Go module: $SENSEOPS_HELM, else $SENSEOPS_CACHE/bin/helm."""
    chosen = os.environ.get("SENSEOPS_HELM")
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    path = Path(chosen) if chosen else cache / "bin" / "helm"
    if not path.exists():
        raise AssertionError(f"{path} missing: run `make helm` (builds helm v3.22.0 from its Go module)")
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with no user configuration (fresh HOME-independent dirs)."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/senseops-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/senseops-helm/config",
        "HELM_DATA_HOME": "/tmp/senseops-helm/data",
    }
    done = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, env=env, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"`helm {' '.join(args)}` exited {done.returncode}:\n{done.stderr}\n{done.stdout}")
    return done


def values_args(values: list[str], sets: list[str]) -> list[str]:
    """``-f CHART/<file>`` per values file and ``--set`` per assignment."""
    return [a for v in values for a in ("-f", str(CHART / v))] + [a for s in sets for a in ("--set", s)]


def render_chart(values: list[str], sets: list[str], include_crds: bool = True) -> str:
    """``helm template`` of the chart (release ``senseops``)."""
    crds = ["--include-crds"] if include_crds else []
    return helm("template", "senseops", str(CHART), *crds, *values_args(values, sets)).stdout


def render_kustomize(*entries: str) -> str:
    """``kubectl kustomize`` of each entry, concatenated."""
    docs = []
    for entry in entries:
        done = subprocess.run(
            [kubectl_binary(), "kustomize", str(REPO / entry)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"kubectl kustomize {entry}: {done.stderr}"
        docs.append(done.stdout)
    return "\n---\n".join(docs)


ObjectKey = tuple[str, str, str, str]


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``2e-05`` (no dot) is a string; Kubernetes (YAML 1.2/JSON) reads a number."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def _numbers_as_json(value: Any) -> Any:
    """12.0 and 12 are the same JSON number; kustomize re-serialises the CRDs' float defaults without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers_as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_json(v) for v in value]
    return value


def objects(rendered: str) -> dict[ObjectKey, dict[str, Any]]:
    """Objects by (apiVersion, kind, namespace, name), with Helm's bookkeeping labels removed."""
    out: dict[ObjectKey, dict[str, Any]] = {}
    for doc in yaml.load_all(rendered, Loader=Yaml12Loader):  # a SafeLoader subclass
        if not doc:
            continue
        doc = _numbers_as_json(doc)
        meta = doc["metadata"]
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in HELM_LABELS}
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        key = (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in out, f"{key} rendered twice"
        out[key] = doc
    return out
