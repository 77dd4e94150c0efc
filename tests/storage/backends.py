"""Backends under test: file:// (temp dir), s3:// (real MinIO) and cos:// (the real COS SDK against the
moto protocol stand-in, see tests/servers/cos_standin.py)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from senseops_common.storage import StoreBase, StoreConfig, open_store

BACKENDS = ["file", "s3", "cos"]



@dataclass
class Backend:
    """A fresh, empty store on one backend plus what a test needs to poke at it."""

    name: str
    root_uri: str
    config: StoreConfig
    store: StoreBase
    env: dict[str, str] = field(default_factory=dict)
    presign_headers: dict[str, str] = field(default_factory=dict)
    bucket: str = ""


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Build a Backend with an empty bucket (or directory) of its own."""
    if name == "file":
        root = f"file://{tmp_path}/store/"
        config = StoreConfig()
        return Backend(name, root, config, open_store(root, config))
    if name == "s3":
        server = request.getfixturevalue("minio_server")
        bucket = "t-" + secrets.token_hex(6)
        server.create_bucket(bucket)
        env = server.store_env()
        config = StoreConfig.from_env(env)
        return Backend(name, f"s3://{bucket}/", config, open_store(f"s3://{bucket}/", config), env, bucket=bucket)
    server = request.getfixturevalue("cos_standin")
    bucket = f"t{secrets.token_hex(5)}-1250000000"
    server.create_bucket(bucket)
    env = server.store_env()
    config = StoreConfig.from_env(env)
    return Backend(
        name, f"cos://{bucket}/", config, open_store(f"cos://{bucket}/", config), env,
        presign_headers={"Host": server.bucket_host(bucket)}, bucket=bucket,
    )
