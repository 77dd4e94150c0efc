"""Fixtures for the runtime tests: the tiny test model, MinIO, and a real runtime server on loopback."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from senseops_runtime.auth import AuthConfig, issue_token
from tests.runtime.server import TEST_SECRET, RuntimeServer
from tests.servers.minio import MinioServer

AUDIO_PREFIX = "audio/"
QUOTA_MINUTES = 1.0  # per subject per day on the test server; tests use fresh subjects
MAX_UPLOAD_BYTES = 3_000_000
MAX_UPLOAD_SECONDS = 90
REALTIME_BURST_S = 3.0  # how far ahead of real time a client may send before it is slowed down
WS_IDLE_TIMEOUT_S = 4.0  # a stream that sends nothing this long is closed (1008)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny SenseVoice-architecture model, trained on espeak-ng sentences (built once, cached)."""
    from tests.testmodel import ensure_tiny_model

    return Path(ensure_tiny_model())


@pytest.fixture(scope="session")
def runtime_bucket(minio_server: MinioServer) -> str:
    """A bucket for recordings and stored audio."""
    name = "rt-" + secrets.token_hex(5)
    minio_server.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def runtime_server(
    tiny_model_dir: Path, minio_server: MinioServer, runtime_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeServer]:
    """The runtime with the tiny model, HS256 auth, small quotas and recording into MinIO."""
    work = tmp_path_factory.mktemp("runtime")
    env = {
        **minio_server.store_env(),
        "SENSEOPS_MODEL_URI": f"file://{tiny_model_dir}",
        "SENSEOPS_MODEL_CACHE_DIR": str(work / "model-cache"),
        "SENSEOPS_BACKEND": "torch",
        "SENSEOPS_JWT_HS256_SECRET": TEST_SECRET,
        "SENSEOPS_MAX_STREAMS_PER_SUBJECT": "2",
        "SENSEOPS_AUDIO_MINUTES_PER_DAY": str(QUOTA_MINUTES),
        "SENSEOPS_RECORDING_ENABLED": "true",
        "SENSEOPS_RECORDING_STORE_URI": f"s3://{runtime_bucket}/",
        "SENSEOPS_SPOOL_DIR": str(work / "spool"),
        "SENSEOPS_AUDIO_SOURCE_PREFIXES": f"s3://{runtime_bucket}/{AUDIO_PREFIX}",
        "SENSEOPS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "SENSEOPS_MAX_UPLOAD_SECONDS": str(MAX_UPLOAD_SECONDS),
        "SENSEOPS_REALTIME_BURST_S": str(REALTIME_BURST_S),
        "SENSEOPS_WS_IDLE_TIMEOUT_S": str(WS_IDLE_TIMEOUT_S),
    }
    server = RuntimeServer(env, work / "runtime.log").start()
    try:
        yield server
    finally:
        server.stop()


def make_token(
    sub: str | None = None,
    anchor: str | None = None,
    scopes: list[str] | None = None,
    consent: bool = False,
    ttl_s: int = 600,
) -> str:
    """A token the test server accepts (fresh subject unless one is given)."""
    sub = sub or "t-" + secrets.token_hex(4)
    return issue_token(
        AuthConfig(hs256_secret=TEST_SECRET),
        TEST_SECRET,
        sub,
        anchor or sub,
        scopes or ["stream", "transcribe"],
        consent,
        time.time(),
        ttl_s,
    )
