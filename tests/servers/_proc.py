"""Small helpers shared by the local server launchers: free ports, readiness polling, clean stops."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Which make target builds each Go binary, for the error message when one is missing.
_BUILT_BY = {
    "registry": "dataplane-bins",
    "crane": "dataplane-bins",
    "prometheus": "dataplane-bins",
    "promtool": "dataplane-bins",
    "kubectl": "bins",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http_ok(
    url: str,
    timeout_s: float,
    proc: subprocess.Popen[bytes] | None = None,
    headers: dict[str, str] | None = None,
    ok_statuses: tuple[int, ...] = (200,),
    fatal: Callable[[bytes], str | None] | None = None,
) -> None:
    """Poll ``url`` until it answers one of ``ok_statuses``; fail early if ``proc`` exits, or if ``fatal``
    finds in an error answer's body a reason it will never turn ready (it returns that reason)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before {url} answered")
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status in ok_statuses:
                    return
                last = reply.status
        except urllib.error.HTTPError as exc:
            if exc.code in ok_statuses:
                return
            last = exc
            reason = fatal(exc.read()) if fatal is not None else None
            if reason:
                raise RuntimeError(f"{url} will not turn ready: {reason}") from None
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s}s (last: {last})")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; always reap."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def go_binary(name: str) -> Path:
    """A binary built from a pinned Go module: ``.bin/NAME`` or ``$SENSEOPS_CACHE/bin/NAME``; a clear
    error naming the make target when it was never built."""
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    for candidate in (REPO / ".bin" / name, cache / "bin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    target = _BUILT_BY.get(name, "bins")
    raise FileNotFoundError(f"{name} not found in .bin/ or $SENSEOPS_CACHE/bin: run `make {target}` first")
