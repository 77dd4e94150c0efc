"""Storage configuration, read only from the environment and mounted Kubernetes Secret files.

Nothing here is ever taken from request data: a request may name an object URI, never an endpoint or a
credential. Each setting is an environment variable; credentials may instead be files in a mounted
Secret directory (``SENSEOPS_STORAGE_SECRET_DIR``, one file per key, as Kubernetes mounts them) — the
file wins over the variable so a rotated Secret (e.g. STS credentials) is picked up by a new store.

=============================  ==================================================================
variable / secret file          meaning
=============================  ==================================================================
SENSEOPS_S3_ENDPOINT            custom endpoint URL (MinIO, COS S3 endpoint); empty = AWS
SENSEOPS_S3_REGION              region (default us-east-1)
SENSEOPS_S3_PATH_STYLE          "1"/"true": path-style addressing (MinIO); default virtual-host
AWS_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _SESSION_TOKEN   S3 credentials (session token = STS)
SENSEOPS_COS_REGION             e.g. ap-guangzhou
SENSEOPS_COS_ENDPOINT           custom endpoint domain (overrides region-derived one)
SENSEOPS_COS_INTERNAL           "1": use the COS internal (VPC) domain
SENSEOPS_COS_SCHEME             https (default) or http
SENSEOPS_COS_IP / _PORT         connect to this address, bucket still in the Host header (tests)
COS_SECRET_ID / COS_SECRET_KEY / COS_TOKEN   COS credentials (token = STS temporary credentials)
SENSEOPS_STORAGE_TIMEOUT_S      per-request connect/read timeout (default 30)
SENSEOPS_STORAGE_DEADLINE_S     bound on one operation including retries (default 120)
=============================  ==================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Defaults and limits, named once.
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_DEADLINE_S = 120.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MULTIPART_THRESHOLD = 16 * 1024 * 1024
DEFAULT_PART_SIZE = 16 * 1024 * 1024
DEFAULT_PART_CONCURRENCY = 4
DEFAULT_PRESIGN_EXPIRES_S = 900
CHUNK_SIZE = 1024 * 1024

_SECRET_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "COS_SECRET_ID",
    "COS_SECRET_KEY",
    "COS_TOKEN",
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class StoreConfig:
    """Everything a backend needs besides the URI. Build with :meth:`from_env`; tests build it directly."""

    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_path_style: bool = False
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_session_token: str | None = None
    cos_region: str | None = None
    cos_endpoint: str | None = None
    cos_internal_domain: bool = False
    cos_scheme: str = "https"
    cos_ip: str | None = None
    cos_port: int | None = None
    cos_secret_id: str | None = None
    cos_secret_key: str | None = None
    cos_token: str | None = None
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    deadline_s: float = DEFAULT_DEADLINE_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    part_size: int = DEFAULT_PART_SIZE
    part_concurrency: int = DEFAULT_PART_CONCURRENCY

    def __repr__(self) -> str:  # never print secrets in logs or tracebacks
        return (
            f"StoreConfig(s3_endpoint={self.s3_endpoint!r}, cos_region={self.cos_region!r}, "
            f"cos_endpoint={self.cos_endpoint!r}, cos_ip={self.cos_ip!r}, credentials=<hidden>)"
        )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, secret_dir: str | Path | None = None
    ) -> StoreConfig:
        """Read the configuration from ``env`` (default ``os.environ``) and the mounted Secret dir."""
        env = os.environ if env is None else env
        secrets = dict(env)
        secret_dir = secret_dir or env.get("SENSEOPS_STORAGE_SECRET_DIR")
        if secret_dir:
            for name in _SECRET_KEYS:
                path = Path(secret_dir) / name
                if path.is_file():
                    secrets[name] = path.read_text().strip()
        port = env.get("SENSEOPS_COS_PORT")
        return cls(
            s3_endpoint=env.get("SENSEOPS_S3_ENDPOINT") or None,
            s3_region=env.get("SENSEOPS_S3_REGION") or "us-east-1",
            s3_path_style=_truthy(env.get("SENSEOPS_S3_PATH_STYLE")),
            s3_access_key=secrets.get("AWS_ACCESS_KEY_ID") or None,
            s3_secret_key=secrets.get("AWS_SECRET_ACCESS_KEY") or None,
            s3_session_token=secrets.get("AWS_SESSION_TOKEN") or None,
            cos_region=env.get("SENSEOPS_COS_REGION") or None,
            cos_endpoint=env.get("SENSEOPS_COS_ENDPOINT") or None,
            cos_internal_domain=_truthy(env.get("SENSEOPS_COS_INTERNAL")),
            cos_scheme=env.get("SENSEOPS_COS_SCHEME") or "https",
            cos_ip=env.get("SENSEOPS_COS_IP") or None,
            cos_port=int(port) if port else None,
            cos_secret_id=secrets.get("COS_SECRET_ID") or None,
            cos_secret_key=secrets.get("COS_SECRET_KEY") or None,
            cos_token=secrets.get("COS_TOKEN") or None,
            request_timeout_s=float(env.get("SENSEOPS_STORAGE_TIMEOUT_S") or DEFAULT_REQUEST_TIMEOUT_S),
            deadline_s=float(env.get("SENSEOPS_STORAGE_DEADLINE_S") or DEFAULT_DEADLINE_S),
        )
