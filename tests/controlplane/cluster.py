"""Start, stop and inspect the local control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok) built by `make bins`.

`up` leaves the processes running in their own sessions and records them in ``state.json`` so that a
later `down`, from any process, stops exactly them. Used by `make cluster-up/-down/-status` (through
``python -m tests.controlplane``) and by the pytest fixture in ``fixtures.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.controlplane import components as c

REPO_ROOT = c.HERE.parents[1]
DEFAULT_ROOT = REPO_ROOT / ".cluster"
START_TIMEOUT_S = 240.0  # a cold apiserver on two busy cores needs well over a minute
STOP_GRACE_S = 10.0


class ClusterError(RuntimeError):
    """The control plane could not be started, or a component died."""


class ComponentExited(ClusterError):
    """A component process ended during start-up (for example: its free port was taken meanwhile)."""


def bin_dir() -> Path:
    """Folder with the Go-built binaries: $SENSEOPS_BIN, else $SENSEOPS_CACHE/bin (where `make bins`
    builds them; the repo's .bin/ links there)."""
    if os.environ.get("SENSEOPS_BIN"):
        return Path(os.environ["SENSEOPS_BIN"])
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    return cache / "bin"


def kubectl_binary() -> str:
    """The kubectl every test and target runs: $SENSEOPS_KUBECTL, else the one `make bins` builds from the
    pinned Kubernetes module (same version as the API server). Never a kubectl found on PATH: the ones
    on these machines are outside the version-skew policy."""
    chosen = os.environ.get("SENSEOPS_KUBECTL")
    if chosen:
        return chosen
    built = bin_dir() / "kubectl"
    if not built.exists():
        raise FileNotFoundError(f"kubectl not found at {built}: run `make bins` (builds it from the pinned "
                                "Kubernetes module)")
    return str(built)


def free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free loopback ports (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ApiClient:
    """Just enough HTTPS client for start-up checks (tests themselves use kubectl)."""

    def __init__(self, server: str, layout: c.Layout) -> None:
        pki = layout.pki
        self.server = server
        self.context = _client_tls(pki.ca_cert, pki.client_cert("admin"), pki.client_key("admin"))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (OSError, urllib.error.URLError):
            return 0, b""

    def get_json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        return json.loads(body) if status == 200 else None


def _client_tls(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def _healthz_ok(port: int) -> bool:
    """Controller-manager/scheduler health: /healthz on their self-signed loopback listener."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # their serving certificates are self-signed at start
    return _https_ok(f"https://127.0.0.1:{port}/healthz", context)


@dataclass
class ClusterState:
    """What `up` started, persisted in state.json for `down`/`status` in another process."""

    root: str
    ports: dict[str, int]
    pids: dict[str, int]
    argv0: dict[str, str]
    started_at: float
    ready_after_s: float | None = None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ClusterState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _pid_runs(pid: int, argv0: str) -> bool:
    """True if ``pid`` is alive, not a zombie, and still the binary we started (pids get reused).

    Compares the kernel's command name (first 15 bytes of the executable's name): /proc/PID/cmdline
    can read empty for a moment right after exec.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat[stat.rindex(")") + 1 :].split()[0]
    return comm == Path(argv0).name[:15] and state not in ("Z", "X")


class LocalCluster:
    """One local control plane rooted at ``root`` (default: the repository's `.cluster/`)."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.layout = c.Layout(root.resolve())

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    def state(self) -> ClusterState | None:
        return ClusterState.load(self.layout.state_file)

    def running_components(self) -> dict[str, bool]:
        """Component name -> whether its recorded process is alive."""
        state = self.state()
        if state is None:
            return {}
        return {name: _pid_runs(pid, state.argv0[name]) for name, pid in state.pids.items()}

    # --- up -------------------------------------------------------------------------------------
    def up(self, timeout_s: float = START_TIMEOUT_S) -> ClusterState:
        """Start every component and wait until the cluster is ready. Idempotent when running."""
        running = self.running_components()
        if running and all(running.values()):
            state = self.state()
            assert state is not None
            self._wait_ready(ApiClient(c.apiserver_url(c.Ports(**state.ports)), self.layout), state,
                             time.monotonic() + timeout_s)
            return state
        if running:
            self.down()  # a half-dead previous cluster: start clean

        binaries = bin_dir()
        missing = [name for name in c.COMPONENT_ORDER if not (binaries / name).is_file()]
        if missing:
            raise ClusterError(f"missing binaries in {binaries}: {', '.join(missing)}; run `make bins`")

        started = time.monotonic()
        deadline = started + timeout_s
        # Ports are picked free but could be taken before a component binds them (other clusters start
        # on this machine too), so a component that exits at start-up gets one fresh try.
        for attempt in (1, 2):
            try:
                fresh = self._start_all(binaries, deadline)
                break
            except ComponentExited:
                if attempt == 2:
                    raise
        fresh.ready_after_s = round(time.monotonic() - started, 1)
        fresh.save(self.layout.state_file)
        return fresh

    def _start_all(self, binaries: Path, deadline: float) -> ClusterState:
        """One start attempt: fresh data, certificates and ports, then every component in order."""
        layout = self.layout
        shutil.rmtree(layout.data, ignore_errors=True)
        layout.data.mkdir(parents=True)
        layout.logs.mkdir(parents=True, exist_ok=True)
        for name in c.COMPONENT_ORDER:  # this run's logs start empty; the previous run's stay as .prev
            if layout.log(name).exists():
                layout.log(name).replace(layout.log(name).with_suffix(".log.prev"))
        ports = c.Ports.from_list(free_ports(6))
        # Imported here so `down`/`status` need nothing beyond the standard library.
        from tests.controlplane.pki import generate_pki

        generate_pki(layout.data / "pki", c.SERVICE_IP)
        self._write_kubeconfigs(ports)
        commands = c.component_commands(binaries, layout, ports)
        state = ClusterState(root=str(layout.root), ports=asdict(ports), pids={},
                             argv0={name: argv[0] for name, argv in commands.items()},
                             started_at=time.time())
        try:
            api = ApiClient(c.apiserver_url(ports), layout)
            self._start(state, "etcd", commands["etcd"])
            etcd_tls = _client_tls(layout.pki.ca_cert, layout.pki.etcd_client_cert, layout.pki.etcd_client_key)
            self._wait(state, deadline, "etcd /health",
                       lambda: _https_ok(c.etcd_client_url(ports) + "/health", etcd_tls))
            self._start(state, "kube-apiserver", commands["kube-apiserver"])
            self._wait(state, deadline, "kube-apiserver /readyz",
                       lambda: api.request("GET", "/readyz")[0] == 200)
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._start(state, name, commands[name])
            for spec in c.FAKE_NODES:
                status, body = api.request("POST", "/api/v1/nodes", c.node_manifest(spec))
                if status not in (201, 409):
                    raise ClusterError(f"creating node {spec.name} failed: HTTP {status} {body[:300]!r}")
            self._wait(state, deadline, "kube-controller-manager /healthz",
                       lambda: _healthz_ok(ports.controller_manager))
            self._wait(state, deadline, "kube-scheduler /healthz", lambda: _healthz_ok(ports.scheduler))
            self._wait_ready(api, state, deadline)
        except BaseException:
            self.down(keep_data=True)
            raise
        return state

    def _write_kubeconfigs(self, ports: c.Ports) -> None:
        pki = self.layout.pki
        ca = pki.ca_cert.read_bytes()
        for stem, path in [("admin", self.layout.kubeconfig),
                           *[(s, self.layout.component_kubeconfig(s))
                             for s in ("controller-manager", "scheduler", "kwok")]]:
            text = c.kubeconfig_yaml(c.apiserver_url(ports), ca, pki.client_cert(stem).read_bytes(),
                                     pki.client_key(stem).read_bytes(), f"senseops-{stem}")
            path.write_text(text)
            path.chmod(0o600)

    def _start(self, state: ClusterState, name: str, argv: list[str]) -> None:
        log = self.layout.log(name)
        with log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            # Own session: the component outlives `python -m tests.controlplane up` and a Ctrl-C in the
            # terminal does not reach it; `down` stops it by pid.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.layout.data)
        state.pids[name] = proc.pid
        state.save(self.layout.state_file)

    def _check_alive(self, state: ClusterState) -> None:
        for name, pid in state.pids.items():
            if not _pid_runs(pid, state.argv0[name]):
                tail = self.log_tail(name, 30)
                raise ComponentExited(f"{name} exited during start-up; last log lines:\n{tail}")

    def _wait(self, state: ClusterState, deadline: float, what: str, check: Any) -> None:
        while True:
            if check():
                return
            self._check_alive(state)
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; logs in {self.layout.logs}")
            time.sleep(0.5)

    def _wait_ready(self, api: ApiClient, state: ClusterState, deadline: float) -> None:
        expected = [spec.name for spec in c.FAKE_NODES]
        reasons: list[str] = []

        def ready() -> bool:
            nonlocal reasons
            nodes = (api.get_json("/api/v1/nodes") or {}).get("items", [])
            reasons = c.unready_reasons(
                readyz_ok=api.request("GET", "/readyz")[0] == 200,
                default_sa_exists=api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0]
                == 200,
                nodes=nodes,
                expected_nodes=expected,
            )
            return not reasons

        try:
            self._wait(state, deadline, "cluster readiness", ready)
        except ClusterError as err:
            raise ClusterError(f"{err}: {'; '.join(reasons)}") from None

    # --- down / status --------------------------------------------------------------------------
    def down(self, keep_data: bool = False) -> list[str]:
        """Stop the recorded processes (SIGTERM, then SIGKILL after a grace period); remove data.

        Logs are kept for post-mortems. Returns the names of the components that were stopped.
        """
        state = self.state()
        stopped: list[str] = []
        if state is not None:
            # In stages, clients first and etcd last: the API server shuts down in about a second once
            # its clients are gone, but takes over ten while etcd is going away underneath it.
            for stage in c.STOP_STAGES:
                alive = {n: state.pids[n] for n in stage
                         if n in state.pids and _pid_runs(state.pids[n], state.argv0[n])}
                for pid in alive.values():
                    _signal(pid, signal.SIGTERM)
                deadline = time.monotonic() + STOP_GRACE_S
                while time.monotonic() < deadline and any(
                        _pid_runs(p, state.argv0[n]) for n, p in alive.items()):
                    time.sleep(0.05)
                for name, pid in alive.items():
                    if _pid_runs(pid, state.argv0[name]):
                        _signal(pid, signal.SIGKILL)
                stopped += list(alive)
        if not keep_data:
            shutil.rmtree(self.layout.data, ignore_errors=True)
            self.layout.kubeconfig.unlink(missing_ok=True)
            self.layout.state_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, Any]:
        """Processes, ports, and whether the API server answers."""
        state = self.state()
        if state is None:
            return {"running": False, "root": str(self.layout.root)}
        components = self.running_components()
        readyz = False
        if all(components.values()) and self.layout.pki.ca_cert.exists():
            api = ApiClient(c.apiserver_url(c.Ports(**state.ports)), self.layout)
            readyz = api.request("GET", "/readyz")[0] == 200
        return {"running": all(components.values()), "readyz": readyz, "components": components,
                "ports": state.ports, "kubeconfig": str(self.kubeconfig), "logs": str(self.layout.logs),
                "ready_after_s": state.ready_after_s}

    def log_tail(self, name: str, lines: int = 40) -> str:
        try:
            return "\n".join(self.layout.log(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=3) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False
