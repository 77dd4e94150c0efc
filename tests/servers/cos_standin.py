"""A COS *protocol stand-in*: moto's S3 server on loopback, reached through the real COS SDK.

No Tencent COS server can run offline. COS's XML API is S3's with a different signature and header
prefix, so this serves moto's S3 application behind a tiny WSGI adapter that renames ``x-cos-*``
request headers to ``x-amz-*`` and ``x-amz-meta-*`` response headers to ``x-cos-meta-*``. The SDK is
given ``IP``/``Port`` (``Scheme=http``) and keeps the bucket in the Host header
(``<bucket>.cos.<region>.myqcloud.com``), which moto reads as a virtual-host bucket. moto does not
check COS signatures, so access-denied paths are covered by table tests, not here.

Run as a process: ``python -m tests.servers.cos_standin --port N``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.servers._proc import free_port, stop_process, wait_http_ok

REPO = Path(__file__).resolve().parents[2]
REGION = "ap-guangzhou"
_PLACEHOLDER_SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDSTANDIN/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


class CosHeaderAdapter:
    """WSGI middleware translating COS header names to S3's and back."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        for name in [k for k in environ if k.startswith("HTTP_X_COS_")]:
            environ["HTTP_X_AMZ_" + name[len("HTTP_X_COS_") :]] = environ.pop(name)
        # moto verifies no signatures and cannot parse COS's "q-sign-algorithm=..." format; it only
        # needs to know the request *is* signed (header or presigned query), else it treats it as
        # anonymous. Hand it a placeholder SigV4 header for COS-signed requests.
        signed = environ.get("HTTP_AUTHORIZATION", "").startswith("q-sign-algorithm") or (
            "q-signature=" in environ.get("QUERY_STRING", "")
        )
        if signed:
            environ["HTTP_AUTHORIZATION"] = _PLACEHOLDER_SIGV4

        def cos_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            renamed = [
                ("x-cos-meta-" + h[len("x-amz-meta-") :] if h.lower().startswith("x-amz-meta-") else h, v)
                for h, v in headers
            ]
            return start_response(status, renamed, exc_info)

        return self.app(environ, cos_start_response)


def make_app() -> CosHeaderAdapter:
    """moto's S3 WSGI application wrapped in the COS adapter."""
    from moto.server import create_backend_app

    return CosHeaderAdapter(create_backend_app("s3"))


class CosStandin:
    """The stand-in as a child process on 127.0.0.1:<port>."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"cos-standin-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> CosStandin:
        """Start the server process and wait until it answers."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.servers.cos_standin", "--port", str(self.port)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_http_ok(f"http://127.0.0.1:{self.port}/", timeout_s, self.proc, ok_statuses=(200, 403, 404))
        return self

    def stop(self) -> None:
        """Stop the server process (its in-memory data is gone)."""
        stop_process(self.proc)
        self.proc = None

    def store_env(self) -> dict[str, str]:
        """Environment for StoreConfig.from_env(): the real COS SDK, pointed at this address."""
        return {
            "SENSEOPS_COS_REGION": REGION,
            "SENSEOPS_COS_SCHEME": "http",
            "SENSEOPS_COS_IP": "127.0.0.1",
            "SENSEOPS_COS_PORT": str(self.port),
            "COS_SECRET_ID": "AKIDstandin",
            "COS_SECRET_KEY": "standin-secret",
        }

    def create_bucket(self, name: str) -> None:
        """Create a bucket through the COS SDK (test setup only)."""
        from senseops_common.storage.config import StoreConfig
        from senseops_common.storage.cos_backend import make_cos_client

        make_cos_client(StoreConfig.from_env(self.store_env())).create_bucket(Bucket=name)

    def bucket_host(self, bucket: str) -> str:
        """The Host header real COS would see for ``bucket`` (presigned URLs need it on the stand-in)."""
        return f"{bucket}.cos.{REGION}.myqcloud.com"


def main() -> None:
    """Serve the stand-in until killed."""
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_simple("127.0.0.1", args.port, make_app(), threaded=True)


if __name__ == "__main__":
    main()
