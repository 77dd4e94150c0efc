"""One real HAProxy (Debian's, master-worker mode) driven through its files and unix sockets (thin I/O).

Everything lives in one state directory: ``haproxy.cfg``, ``haproxy.pid`` (the master's pid),
``admin.sock`` (the worker's runtime API, level admin, ``expose-fd listeners``), ``master.sock`` (the
master CLI) and ``haproxy.log``. A new controller process can therefore adopt an HAProxy that an earlier
one started: the data plane keeps serving while its controller is down, as with a real Gateway.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.gateway.haproxy_config import ProcessPaths

HAPROXY_BINARY = os.environ.get("SENSEOPS_HAPROXY", "haproxy")
METRIC_LINE = re.compile(
    r'^haproxy_server_http_responses_total\{proxy="([^"]+)",server="([^"]+)",code="([^"]+)"\} (\S+)$')


class HAProxyError(RuntimeError):
    """HAProxy refused a configuration or a runtime command, or did not start; the message has its output."""


def _alive_haproxy(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"haproxy" in cmdline.split(b"\0", 1)[0]


class HAProxy:
    """The HAProxy of one state directory."""

    def __init__(self, state_dir: Path, binary: str = HAPROXY_BINARY) -> None:
        self.state_dir = state_dir
        self.binary = binary
        self.config_path = state_dir / "haproxy.cfg"
        self.master_socket = state_dir / "master.sock"
        self.log_path = state_dir / "haproxy.log"
        self.paths = ProcessPaths(admin_socket=str(state_dir / "admin.sock"), pidfile=str(state_dir / "haproxy.pid"))
        self._child: subprocess.Popen[bytes] | None = None

    # --- process -------------------------------------------------------------------------------

    def master_pid(self) -> int | None:
        """The master's pid when it is alive (read from the pid file, checked in /proc)."""
        try:
            pid = int(Path(self.paths.pidfile).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if self._child is not None and self._child.poll() is not None:
            return None
        return pid if _alive_haproxy(pid) else None

    def running(self) -> bool:
        return self.master_pid() is not None and self.worker_pid() is not None

    def check(self, text: str) -> None:
        """`haproxy -c` on ``text``; raise HAProxyError with HAProxy's own message when it is invalid."""
        candidate = self.state_dir / "haproxy.cfg.new"
        candidate.write_text(text)
        result = subprocess.run([self.binary, "-c", "-q", "-f", str(candidate)], capture_output=True, text=True)
        if result.returncode != 0:
            raise HAProxyError(f"HAProxy rejected the generated configuration ({candidate}):\n"
                               f"{result.stdout}{result.stderr}")

    def _install(self, text: str) -> None:
        self.check(text)
        os.replace(self.state_dir / "haproxy.cfg.new", self.config_path)

    def write_config(self, text: str) -> None:
        """Record ``text`` as the configuration without reloading (it matches what runtime commands did)."""
        tmp = self.state_dir / "haproxy.cfg.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def start(self, text: str, timeout_s: float = 15.0) -> None:
        """Start the master (and its worker) on ``text``; returns once the runtime API answers."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._install(text)
        for stale in (self.paths.admin_socket, str(self.master_socket), self.paths.pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        with self.log_path.open("ab") as log:
            # Own session: a Ctrl-C meant for the controller does not stop the data plane.
            self._child = subprocess.Popen(
                [self.binary, "-W", "-S", f"{self.master_socket},mode,600", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                raise HAProxyError(f"HAProxy exited with {self._child.returncode}; see {self.log_path}:\n"
                                   f"{self.log_tail()}")
            if self.master_pid() is not None and self.worker_pid() is not None:
                return
            time.sleep(0.05)
        raise HAProxyError(f"HAProxy did not answer on {self.paths.admin_socket} within {timeout_s}s:\n"
                           f"{self.log_tail()}")

    def reload(self, text: str, timeout_s: float = 15.0) -> None:
        """Seamless reload: the master starts a new worker on ``text`` and hands it the listening sockets;
        the old worker stops accepting and finishes the requests it has. Returns once the new worker answers."""
        master = self.master_pid()
        if master is None:
            raise HAProxyError("cannot reload: HAProxy is not running")
        before = self.worker_pid()
        self._install(text)
        os.kill(master, signal.SIGUSR2)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = self.worker_pid()
            if now is not None and now != before:
                return
            time.sleep(0.02)
        raise HAProxyError(f"HAProxy did not load the new configuration within {timeout_s}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop master and workers (SIGTERM, then SIGKILL) and remove the sockets."""
        pid = self.master_pid()
        workers = self._worker_pids()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and (_alive_haproxy(pid) or any(_alive_haproxy(w) for w in workers)):
                if self._child is not None:
                    self._child.poll()
                time.sleep(0.05)
            for leftover in [pid, *workers]:
                if _alive_haproxy(leftover):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(leftover, signal.SIGKILL)
        if self._child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=5)
        for stale in (self.paths.admin_socket, str(self.master_socket)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- runtime API ---------------------------------------------------------------------------

    def command(self, line: str, timeout_s: float = 5.0, socket_path: str | None = None) -> str:
        """Send one runtime-API command and return HAProxy's answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(socket_path or self.paths.admin_socket)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def worker_pid(self) -> int | None:
        try:
            info = self.command("show info", timeout_s=2.0)
        except OSError:
            return None
        found = re.search(r"^Pid: (\d+)$", info, re.MULTILINE)
        return int(found.group(1)) if found else None

    def _worker_pids(self) -> list[int]:
        pid = self.master_pid()
        if pid is None:
            return []
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return [int(c) for c in children]

    def apply(self, commands: list[str]) -> None:
        """Run runtime commands in order; raise HAProxyError on the first one HAProxy refuses."""
        for line in commands:
            answer = self.command(line).strip()
            if answer and "changed" not in answer and not answer.startswith("no need to change"):
                raise HAProxyError(f"HAProxy refused `{line}`: {answer}")

    def get_weight(self, backend: str, server: str) -> int:
        """The server's current weight (`get weight`)."""
        answer = self.command(f"get weight {backend}/{server}").strip()
        try:
            return int(answer.split()[0])
        except (ValueError, IndexError) as err:
            raise HAProxyError(f"`get weight {backend}/{server}` answered {answer!r}") from err


def parse_server_responses(metrics_text: str) -> dict[tuple[str, str, str], float]:
    """(backend, server, code class) -> count, from the exporter's ``haproxy_server_http_responses_total``."""
    out: dict[tuple[str, str, str], float] = {}
    for line in metrics_text.splitlines():
        found = METRIC_LINE.match(line)
        if found:
            out[(found.group(1), found.group(2), found.group(3))] = float(found.group(4))
    return out
