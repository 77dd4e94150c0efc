"""Run the real operator (`python -m senseops_operator`) as a subprocess against the local cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """One operator process; its log goes to `log_path`."""

    def __init__(self, kubeconfig: Path, log_path: Path, namespaces: list[str], extra_env: dict[str, str]) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.namespaces = namespaces
        self.extra_env = extra_env
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> OperatorProcess:
        env = {
            **os.environ,
            **self.extra_env,
            "KUBECONFIG": str(self.kubeconfig),
            "SENSEOPS_NAMESPACES": ",".join(self.namespaces),
            "SENSEOPS_METRICS_PORT": str(self.metrics_port),
            "SENSEOPS_LIVENESS_PORT": str(self.liveness_port),
            "SENSEOPS_BIND_HOST": "127.0.0.1",
            "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator", "runtime", "trainer_image")),
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "senseops_operator"], env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.liveness_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"operator not alive after {timeout_s}s:\n{self.log_tail()}")

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.liveness_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the operator dies mid-work, with no chance to tidy up (a node crash, an OOM kill)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
