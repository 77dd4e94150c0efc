"""Operator settings from the environment (secrets never come from objects' specs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...]  # empty = cluster-wide
    metrics_port: int
    liveness_port: int
    bind_host: str
    artifact_check_timeout_s: float
    # Model images: the runtime base image the model layer goes onto (None: an empty OCI base), the
    # operator's own registry credentials (a docker config.json) and registries allowed over plain http.
    image_base: str | None = None
    registry_auth_file: Path | None = None
    insecure_registries: frozenset[str] = frozenset()
    registry_timeout_s: float = 20.0
    # Artifact checks: file:// only below this root (None: refused), at most this many at once, and no
    # artifact with more objects or bytes than these is hashed.
    file_artifact_root: str | None = None
    artifact_check_concurrency: int = 4
    artifact_max_objects: int = 10_000
    artifact_max_bytes: int = 64 * 2**30

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
            image_base=e.get("SENSEOPS_IMAGE_BASE") or None,
            registry_auth_file=Path(e["SENSEOPS_REGISTRY_AUTH_FILE"]) if e.get("SENSEOPS_REGISTRY_AUTH_FILE") else None,
            insecure_registries=frozenset(r.strip() for r in e.get("SENSEOPS_INSECURE_REGISTRIES", "").split(",")
                                          if r.strip()),
            registry_timeout_s=float(e.get("SENSEOPS_REGISTRY_TIMEOUT_S", "20")),
            file_artifact_root=e.get("SENSEOPS_FILE_ARTIFACT_ROOT") or None,
            artifact_check_concurrency=max(1, int(e.get("SENSEOPS_ARTIFACT_CHECK_CONCURRENCY", "4"))),
            artifact_max_objects=int(e.get("SENSEOPS_ARTIFACT_MAX_OBJECTS", "10000")),
            artifact_max_bytes=int(e.get("SENSEOPS_ARTIFACT_MAX_BYTES", str(64 * 2**30))),
        )
