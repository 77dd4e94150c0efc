"""NGINX canary Ingress (legacy router): a copy of the stable Ingress, owned by the Rollout, pointing at the
candidate Service with `nginx.ingress.kubernetes.io/canary-weight`. ingress-nginx is retired upstream
(March 2026); prefer the Gateway API router."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from senseops_operator.routers.apply import server_side_apply
from senseops_operator.routers.base import RouterError

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
# Annotations of the stable Ingress that must not be copied (they would make the copy a second canary or
# carry another tool's bookkeeping).
_NOT_COPIED = ("kubectl.kubernetes.io/last-applied-configuration", "argocd.argoproj.io/")


def canary_name(rollout: str) -> str:
    return f"{rollout}-canary"


def canary_ingress(stable_ingress: dict[str, Any], rollout: str, owner: dict[str, Any], stable: str, canary: str,
                   weight: int) -> dict[str, Any]:
    """The canary Ingress for a weight (pure): same hosts and paths, backends on the candidate Service."""
    meta = stable_ingress.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not k.startswith(_NOT_COPIED) and not k.startswith("nginx.ingress.kubernetes.io/canary")}
    spec = copy.deepcopy(stable_ingress.get("spec") or {})
    found = False
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service") or {}
            if service.get("name") == stable:
                service["name"], found = canary, True
    if not found:
        raise RouterError(f"Ingress {meta.get('name')} has no path to the stable Service {stable!r}")
    spec.pop("defaultBackend", None)
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": canary_name(rollout), "namespace": meta.get("namespace"),
                     "annotations": {**annotations, CANARY: "true", CANARY_WEIGHT: str(weight)},
                     "ownerReferences": [owner]},
        "spec": spec,
    }


def ingress_weight(ingress: dict[str, Any] | None) -> int | None:
    """The weight a canary Ingress carries (pure); None when it does not exist or is not a canary."""
    if ingress is None:
        return None
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    if annotations.get(CANARY) != "true":
        return None
    try:
        return int(annotations.get(CANARY_WEIGHT, "0"))
    except ValueError:
        return None


class NginxRouter:
    def __init__(self, api: client.ApiClient, namespace: str, stable_ingress: str, rollout: str,
                 owner: dict[str, Any], stable: str, canary: str) -> None:
        self.api, self.namespace, self.stable_ingress, self.rollout = api, namespace, stable_ingress, rollout
        self.owner, self.stable, self.canary = owner, stable, canary
        self.net = client.NetworkingV1Api(api)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            obj = self.net.read_namespaced_ingress(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise RouterError(f"reading Ingress {name}: {exc.reason}") from exc
        result: dict[str, Any] = self.api.sanitize_for_serialization(obj)
        return result

    def set_weight(self, weight: int) -> None:
        stable = self._read(self.stable_ingress)
        if stable is None:
            raise RouterError(f"Ingress {self.namespace}/{self.stable_ingress} not found; create it or fix "
                              "spec.trafficRouting.nginx.stableIngress")
        body = canary_ingress(stable, self.rollout, self.owner, self.stable, self.canary, weight)
        path = f"/apis/networking.k8s.io/v1/namespaces/{self.namespace}/ingresses/{canary_name(self.rollout)}"
        server_side_apply(self.api, path, body)

    def confirmed_weight(self) -> int | None:
        return ingress_weight(self._read(canary_name(self.rollout)))
