"""Fixtures for the gateway data plane: CRDs, test pods in the pod network, the controller stand-in + HAProxy.

* ``gateway_crds``      — Gateway API CRDs (standard channel, from the Go module) and our GatewayClass.
* ``pod_network``       — a network namespace of this test run with pod addresses from 198.18.0.0/15.
* ``backend_pods``      — one HTTP + WebSocket backend process inside it, listening on several pod addresses.
* ``gateway_dataplane`` — the controller stand-in as a subprocess, with its HAProxy; on teardown both are
  stopped and the fixture checks that no HAProxy process of its state directory is left.
* ``gw_namespace``      — a fresh namespace per test, deleted afterwards.

Processes are recorded under ``.cluster/gateway-pytest-<pid>/``; a later session stops whatever a killed
session left there (controller, HAProxy, backend), checking each pid's command line first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.controlplane.cluster import DEFAULT_ROOT
from tests.controlplane.fixtures import ClusterHandle, kubectl_binary
from tests.gateway import crds
from tests.gateway.__main__ import gateway_class_manifest
from tests.gateway.haproxy import HAProxy, _alive_haproxy
from tests.gateway.helpers import BACKEND_PORT, wait_until
from tests.procnode.podnet import PodNetwork, PodNetworkError
from tests.servers._proc import stop_process, wait_http_ok

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CLASS = "senseops-standin"
BACKEND_COUNT = 6
SESSION_ROOT = DEFAULT_ROOT / f"gateway-pytest-{os.getpid()}"


def _record(pid: int, name: str) -> None:
    """Remember a process this session started, for the reaper of a later session."""
    (SESSION_ROOT / "pids").mkdir(parents=True, exist_ok=True)
    (SESSION_ROOT / "pids" / name).write_text(str(pid))


def _reap_abandoned_sessions() -> None:
    """Stop what gateway fixtures of killed pytest sessions left running."""
    for root in DEFAULT_ROOT.glob("gateway-pytest-*"):
        owner = root.name.removeprefix("gateway-pytest-")
        if not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        for record in sorted((root / "pids").glob("*")):
            with contextlib.suppress(OSError, ValueError):
                pid = int(record.read_text())
                if b"tests.gateway" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
        for state_dir in root.glob("standin-*"):
            HAProxy(state_dir).stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def gateway_crds(local_cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    _reap_abandoned_sessions()
    crds.install([kubectl_binary(), f"--kubeconfig={local_cluster.kubeconfig}"])
    local_cluster.kubectl("apply", "-f", "-", input=gateway_class_manifest(GATEWAY_CLASS))
    yield local_cluster
    if request.session.testsfailed == 0:  # otherwise the controller and HAProxy logs stay for a post-mortem
        shutil.rmtree(SESSION_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def pod_network() -> Iterator[PodNetwork]:
    try:
        network = PodNetwork.create()
    except PodNetworkError as err:
        pytest.fail(f"the test pod network could not be created: {err}", pytrace=False)
    try:
        _drop_foreign_routes(network)
        yield network
    finally:
        network.destroy()


def _drop_foreign_routes(network: PodNetwork) -> None:
    """Remove host routes inside our block's CIDR that do not lead into our namespace.

    A session that died may leave more specific routes (a per-pod /32 to a sandbox that a surviving process
    keeps alive) inside the block we now own; they would send our test traffic to someone else's process.
    """
    cidr = str(network.plan.pod_cidr)
    listed = subprocess.run(["ip", "-4", "route", "show", "root", cidr], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        fields = line.split()
        if fields and fields[0] != cidr and network.plan.host_veth not in fields:
            subprocess.run(["ip", "route", "del", fields[0]], capture_output=True)


def route_device(address: str) -> str:
    """The host device traffic to ``address`` leaves through (`ip route get`)."""
    fields = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True).stdout.split()
    return fields[fields.index("dev") + 1] if "dev" in fields else ""


@dataclass
class BackendPods:
    """Pod addresses served by one backend process in the pod network."""

    addresses: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path


@pytest.fixture(scope="module")
def backend_pods(pod_network: PodNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendPods]:
    addresses = [pod_network.allocate_ip() for _ in range(BACKEND_COUNT)]
    log_path = tmp_path_factory.mktemp("backends") / "backend.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*pod_network.exec_prefix(), sys.executable, "-m", "tests.gateway.backend",
             *(f"{ip}:{BACKEND_PORT}" for ip in addresses)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    _record(process.pid, "backend")
    try:
        for ip in addresses:
            # Test traffic goes only into the namespace this run created: check the host's route to each address.
            assert route_device(ip) == pod_network.plan.host_veth, f"{ip} is not routed into {pod_network.netns}"
            wait_http_ok(f"http://{ip}:{BACKEND_PORT}/", timeout_s=60, proc=process)
        yield BackendPods(addresses, process, log_path)
    finally:
        stop_process(process)
        for ip in addresses:
            pod_network.release_ip(ip)


@dataclass
class GatewayDataplane:
    """The controller stand-in process and the HAProxy it drives (inspected through its state directory)."""

    cluster: ClusterHandle
    state_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def proxy(self) -> HAProxy:
        return HAProxy(self.state_dir)

    @property
    def log_path(self) -> Path:
        return self.state_dir / "controller.log"

    def start(self) -> GatewayDataplane:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.gateway", "run", f"--kubeconfig={self.cluster.kubeconfig}",
                 f"--state-dir={self.state_dir}", "--resync=10"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _record(self.process.pid, f"controller-{self.state_dir.name}")
        wait_until("HAProxy started by the controller stand-in", lambda: self.proxy.running(), timeout_s=60)
        return self

    def crash(self) -> None:
        """SIGKILL the controller (HAProxy keeps running, as a data plane does when its controller dies)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> list[int]:
        """Stop controller and HAProxy; return the pids of HAProxy processes that were still alive after."""
        proxy = self.proxy
        pids = [p for p in (proxy.master_pid(), proxy.worker_pid()) if p is not None]
        if self.process is not None:
            stop_process(self.process)
        proxy.stop()
        time.sleep(0.2)
        return [p for p in pids if _alive_haproxy(p)]


@pytest.fixture(scope="module")
def gateway_dataplane(gateway_crds: ClusterHandle) -> Iterator[GatewayDataplane]:
    state_dir = SESSION_ROOT / f"standin-{secrets.token_hex(3)}"
    state_dir.mkdir(parents=True)
    dataplane = GatewayDataplane(gateway_crds, state_dir).start()
    try:
        yield dataplane
    finally:
        left = dataplane.stop()
        assert not left, f"HAProxy processes left behind: {left}"


@pytest.fixture
def gw_namespace(gateway_crds: ClusterHandle) -> Iterator[str]:
    name = f"gw-{secrets.token_hex(3)}"
    gateway_crds.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        # Delete what the data plane serves first (synchronously), so the next test starts from a settled proxy.
        gateway_crds.kubectl("delete", "httproutes,gateways,ingresses,services,endpointslices", "--all", "-n", name,
                             "--wait=true", "--timeout=60s", check=False)
        gateway_crds.kubectl("delete", "namespace", name, "--wait=false", check=False)
