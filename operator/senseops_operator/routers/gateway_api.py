"""Gateway API router: weights on the HTTPRoute's `backendRefs` (the primary router).

Every rule that sends traffic to the stable Service gets exactly two backendRefs: stable at 100 - w and
the candidate at w (weight 0 keeps the candidate listed, so the change to 5 % is a weight change only).
Rules for other Services are left as they are. The weight counts as confirmed when the Gateway controller
reports `Accepted=True` for the route's current generation on every parent.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from senseops_operator.routers.apply import server_side_apply
from senseops_operator.routers.base import RouterError

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"


def weighted_rules(rules: list[dict[str, Any]], stable: str, canary: str, weight: int) -> list[dict[str, Any]]:
    """The route's rules with stable/candidate weights set (pure). Raises when no rule names stable."""
    out, touched = [], False
    for rule in rules:
        refs = rule.get("backendRefs") or []
        stable_ref = next((r for r in refs if r.get("name") == stable and r.get("kind", "Service") == "Service"), None)
        if stable_ref is None:
            out.append(copy.deepcopy(rule))
            continue
        touched = True
        canary_ref = {**{k: v for k, v in stable_ref.items() if k != "weight"}, "name": canary, "weight": weight}
        others = [copy.deepcopy(r) for r in refs if r.get("name") not in (stable, canary)]
        out.append({**copy.deepcopy(rule),
                    "backendRefs": [{**stable_ref, "weight": 100 - weight}, canary_ref, *others]})
    if not touched:
        raise RouterError(f"no rule of the HTTPRoute sends traffic to the stable Service {stable!r}; "
                          "add a backendRef to it")
    return out


def route_weight(route: dict[str, Any], stable: str, canary: str) -> int | None:
    """The candidate's share in % the route asks for, if the controller accepted this generation (pure)."""
    generation = (route.get("metadata") or {}).get("generation")
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        return None
    for parent in parents:
        accepted = next((c for c in parent.get("conditions") or [] if c.get("type") == "Accepted"), None)
        if accepted is None or accepted.get("status") != "True" or accepted.get("observedGeneration") != generation:
            return None
    shares = set()
    for rule in (route.get("spec") or {}).get("rules") or []:
        weights = {r.get("name"): int(r.get("weight", 1)) for r in rule.get("backendRefs") or []}
        if stable not in weights:
            continue
        total = weights[stable] + weights.get(canary, 0)
        shares.add(0 if total == 0 else round(100 * weights.get(canary, 0) / total))
    return shares.pop() if len(shares) == 1 else None


class GatewayAPIRouter:
    def __init__(self, api: client.ApiClient, namespace: str, route: str, stable: str, canary: str) -> None:
        self.api, self.namespace, self.route, self.stable, self.canary = api, namespace, route, stable, canary
        self.objects = client.CustomObjectsApi(api)

    def _get(self) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.objects.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.route)
        except ApiException as exc:
            if exc.status == 404:
                raise RouterError(f"HTTPRoute {self.namespace}/{self.route} not found; create it or fix "
                                  "spec.trafficRouting.gatewayAPI.httpRoute") from exc
            raise RouterError(f"reading HTTPRoute {self.route}: {exc.reason}") from exc
        return obj

    def set_weight(self, weight: int) -> None:
        route = self._get()
        rules = weighted_rules((route.get("spec") or {}).get("rules") or [], self.stable, self.canary, weight)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute",
                "metadata": {"name": self.route, "namespace": self.namespace}, "spec": {"rules": rules}}
        server_side_apply(self.api, f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{self.route}",
                          body)

    def confirmed_weight(self) -> int | None:
        return route_weight(self._get(), self.stable, self.canary)
