"""Launch a real MinIO server (built from its Go module by ``make minio``) on loopback.

Each instance gets a free port, its own data directory and generated root credentials. ``stop()`` and
``start()`` keep the port, data and credentials, so a test can take the server away and bring the
same one back (the spool fault test needs a 30 s outage).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from tests.servers._proc import free_port, stop_process, wait_http_ok

REPO = Path(__file__).resolve().parents[2]


def minio_binary() -> Path:
    """The MinIO binary from ``.bin/`` or the machine cache; a clear error if ``make minio`` never ran."""
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    for candidate in (REPO / ".bin" / "minio", cache / "bin" / "minio"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("MinIO binary not found in .bin/ or $SENSEOPS_CACHE/bin: run `make minio` first")


class MinioServer:
    """One MinIO process serving ``data_dir`` on ``127.0.0.1:port``."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.console_port = free_port()
        self.access_key = "senseops-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        self.log_path = data_dir.parent / f"minio-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> MinioServer:
        """Start (or restart) the server and wait until it is live."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.data_dir.parent),
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(
            [str(minio_binary()), "server", str(self.data_dir), "--quiet",
             "--address", f"127.0.0.1:{self.port}", "--console-address", f"127.0.0.1:{self.console_port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_http_ok(f"{self.endpoint}/minio/health/ready", timeout_s, self.proc)
        return self

    def stop(self) -> None:
        """Stop the server (data stays)."""
        stop_process(self.proc)
        self.proc = None

    def store_env(self) -> dict[str, str]:
        """Environment variables that point StoreConfig.from_env() at this server."""
        return {
            "SENSEOPS_S3_ENDPOINT": self.endpoint,
            "SENSEOPS_S3_PATH_STYLE": "1",
            "SENSEOPS_S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def create_bucket(self, name: str) -> None:
        """Create a bucket with boto3 (test setup only)."""
        from senseops_common.storage.config import StoreConfig
        from senseops_common.storage.s3_backend import make_s3_client

        make_s3_client(StoreConfig.from_env(self.store_env())).create_bucket(Bucket=name)
