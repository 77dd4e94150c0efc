"""The public routes in manifests/ (Ingress, HTTPRoute) never reach /metrics, /api/usage or the probes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
PRIVATE = ["/metrics", "/api/usage", "/healthz", "/readyz"]
PUBLIC = ["/ws/stream", "/api/transcribe", "/api/health"]


def path_matches(path_type: str, rule: str, request: str) -> bool:
    """Kubernetes Ingress / Gateway API path matching (Exact, Prefix by segments, regex treated as all)."""
    if path_type == "Exact":
        return request == rule
    if path_type in ("Prefix", "PathPrefix", "ImplementationSpecific"):
        base = rule.rstrip("/")
        return base == "" or request == base or request.startswith(base + "/")
    return True  # RegularExpression: assume the worst


def public_matches(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(pathType, path) of every rule in an Ingress or HTTPRoute."""
    if doc.get("kind") == "Ingress":
        spec = doc.get("spec", {})
        if spec.get("defaultBackend"):
            yield "Prefix", "/"
        for rule in spec.get("rules", []):
            for entry in rule.get("http", {}).get("paths", []):
                yield entry.get("pathType", "ImplementationSpecific"), entry.get("path", "/")
    elif doc.get("kind") == "HTTPRoute":
        for rule in doc.get("spec", {}).get("rules", []):
            matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
            for match in matches:
                path = match.get("path", {"type": "PathPrefix", "value": "/"})
                yield path.get("type", "PathPrefix"), path.get("value", "/")


def _routes() -> list[tuple[str, str, str]]:
    found = []
    for file in sorted(MANIFESTS.rglob("*.yaml")):
        if "templates" in file.relative_to(MANIFESTS).parts:  # Helm templates: checked rendered, below
            continue
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict):
                found += [(str(file.relative_to(MANIFESTS)), t, p) for t, p in public_matches(doc)]
    return found


def _chart_routes() -> list[tuple[str, str, str]]:
    """The Helm chart rendered with both its Ingress and its HTTPRoute."""
    from tests.helm.chart import render_chart

    text = render_chart([], ["runtime.httpRoute.enabled=true", "runtime.httpRoute.parentRefs[0].name=gw"],
                        include_crds=False)
    return [("helm", t, p) for doc in yaml.safe_load_all(text) if isinstance(doc, dict)
            for t, p in public_matches(doc)]


@pytest.mark.parametrize(
    ("path_type", "rule", "request_path", "expected"),
    [
        ("Prefix", "/", "/metrics", True),
        ("Prefix", "/api", "/api/usage", True),
        ("Prefix", "/api/transcribe", "/api/transcribe-x", False),
        ("Exact", "/api/transcribe", "/api/transcribe", True),
        ("Exact", "/api/transcribe", "/api/usage", False),
        ("PathPrefix", "/ws/", "/ws/stream", True),
        ("RegularExpression", "/x", "/metrics", True),
    ],
)
def test_path_matching(path_type: str, rule: str, request_path: str, expected: bool) -> None:
    assert path_matches(path_type, rule, request_path) is expected


@pytest.mark.parametrize("source", ["kustomize", "helm"])
def test_public_routes_expose_the_api_but_not_metrics_usage_or_probes(source: str) -> None:
    routes = _routes() if source == "kustomize" else _chart_routes()
    assert routes, f"expected the runtime's public routes in the {source} manifests"
    leaks = [(f, t, p, private) for f, t, p in routes for private in PRIVATE if path_matches(t, p, private)]
    assert leaks == []
    for public in PUBLIC:
        assert any(path_matches(t, p, public) for _, t, p in routes), f"{public} is not routed"
