"""Operator settings from the environment (secrets never come from objects' specs)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...]  # empty = cluster-wide
    metrics_port: int
    liveness_port: int
    bind_host: str
    artifact_check_timeout_s: float

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        e = os.environ if env is None else env
        namespaces = tuple(n.strip() for n in e.get("SENSEOPS_NAMESPACES", "").split(",") if n.strip())
        return cls(
            namespaces=namespaces,
            metrics_port=int(e.get("SENSEOPS_METRICS_PORT", "9090")),
            liveness_port=int(e.get("SENSEOPS_LIVENESS_PORT", "8080")),
            bind_host=e.get("SENSEOPS_BIND_HOST", "0.0.0.0"),
            artifact_check_timeout_s=float(e.get("SENSEOPS_ARTIFACT_CHECK_TIMEOUT_S", "120")),
        )
