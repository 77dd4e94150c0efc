"""Launch the real runtime (``python -m senseops_runtime`` under uvicorn) on a free loopback port.

Used by the runtime tests, the streaming benchmark and ``make demo-runtime``. Settings go in through the
environment exactly as in a Deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.servers._proc import free_port, stop_process, wait_http_ok

REPO = Path(__file__).resolve().parents[2]
TEST_SECRET = "runtime-tests-hs256-secret-0123456789abcdef"


def failed_load_reason(body: bytes) -> str | None:
    """The reason in a ``/readyz`` answer when the model load failed (the runtime never turns ready then)."""
    try:
        reason = json.loads(body).get("reason", "")
    except (ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) and reason.startswith("model load failed") else None


class RuntimeServer:
    """One runtime process; ``env`` holds ``SENSEOPS_*`` settings (added to a clean base environment)."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/stream"

    def start(self, ready_timeout_s: float = 300.0, wait_path: str = "/readyz") -> RuntimeServer:
        """Start and wait for ``wait_path`` to answer 200 (default: model loaded and warm)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("SENSEOPS_")}
        pythonpath = os.pathsep.join(str(REPO / p) for p in ("operator", "runtime", "trainer_image", "."))
        env = {**base, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1", **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "senseops_runtime", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()
        try:
            wait_http_ok(f"{self.http}{wait_path}", ready_timeout_s, self.proc, fatal=failed_load_reason)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"runtime did not become ready ({exc}); log:\n{self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (graceful: lifespan shutdown drains the spool briefly), SIGKILL after 15 s."""
        stop_process(self.proc, timeout_s=15.0)
        self.proc = None


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
