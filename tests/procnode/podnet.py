"""The test pod network: a network namespace the test run creates itself, with pod IPs that
EndpointSlices accept.

kube-apiserver refuses loopback addresses in EndpointSlices, so pods that must sit behind Services
need other addresses. We take them from 198.18.0.0/15 (RFC 2544, reserved for benchmarking) and put
them on the loopback device of a network namespace of our own, reached from the host through a veth
pair and one host route. Nothing ever leaves the machine: every pod address lives inside that
namespace.

Several test sessions may run at once on one machine, so the range is cut into blocks; a session
takes the first free block under a file lock that it holds for as long as the network exists.

    block i (0..63)   pod CIDR 198.18.(4i).0/22      namespace  senseops-pn<i>
                      link     198.19.254.(4i)/30    host end .4i+1 (veth sopn<i>h), namespace end .4i+2

Processes inside the namespace cannot reach the host's 127.0.0.1. :class:`LoopbackBridge` mirrors
chosen host loopback ports into the namespace's own loopback (and the Kubernetes Service address
10.96.0.1:443 onto the API server), so a pod reaches MinIO, the registry or the API server at the
same address a host process would use.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import os
import socket
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

POD_SUPERNET = ipaddress.ip_network("198.18.0.0/16")
LINK_SUPERNET = ipaddress.ip_network("198.19.254.0/24")
BLOCK_COUNT = 64
BLOCK_PREFIX = 22
LOCK_DIR = Path(os.environ.get("SENSEOPS_PODNET_LOCKS", "/run/senseops-podnet"))
CLONE_NEWNET = 0x40000000


class PodNetworkError(RuntimeError):
    """The pod network could not be set up (needs root and CAP_NET_ADMIN)."""


@dataclass(frozen=True)
class PodNetPlan:
    """Names and addresses of pod-network block ``index`` (pure; see the module docstring)."""

    index: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < BLOCK_COUNT:
            raise ValueError(f"pod network block must be in 0..{BLOCK_COUNT - 1}, got {self.index}")

    @property
    def netns(self) -> str:
        return f"senseops-pn{self.index}"

    @property
    def host_veth(self) -> str:
        return f"sopn{self.index}h"

    @property
    def ns_veth(self) -> str:
        return f"sopn{self.index}p"

    @property
    def pod_cidr(self) -> ipaddress.IPv4Network:
        base = int(POD_SUPERNET.network_address) + self.index * 2 ** (32 - BLOCK_PREFIX)
        return ipaddress.IPv4Network((base, BLOCK_PREFIX))

    @property
    def host_ip(self) -> str:
        return str(LINK_SUPERNET.network_address + 4 * self.index + 1)

    @property
    def ns_ip(self) -> str:
        return str(LINK_SUPERNET.network_address + 4 * self.index + 2)

    def pod_ips(self) -> Iterable[str]:
        """Addresses handed to pods, in order (the first few are kept back)."""
        for offset, address in enumerate(self.pod_cidr.hosts()):
            if offset >= 10:
                yield str(address)

    def setup_commands(self) -> list[list[str]]:
        """The `ip` commands that create this block's namespace, link and route."""
        ns = ["ip", "netns", "exec", self.netns]
        return [
            ["ip", "netns", "add", self.netns],
            [*ns, "ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", self.ns_veth],
            ["ip", "link", "set", self.ns_veth, "netns", self.netns],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_veth],
            ["ip", "link", "set", self.host_veth, "up"],
            [*ns, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_veth],
            [*ns, "ip", "link", "set", self.ns_veth, "up"],
            ["ip", "route", "add", str(self.pod_cidr), "via", self.ns_ip],
        ]

    def teardown_commands(self) -> list[list[str]]:
        """Undo :meth:`setup_commands` (each may fail harmlessly when already gone)."""
        return [
            ["ip", "route", "del", str(self.pod_cidr)],
            ["ip", "link", "del", self.host_veth],
            ["ip", "netns", "del", self.netns],
        ]


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise PodNetworkError(f"`{' '.join(cmd)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


def teardown(plan: PodNetPlan) -> None:
    """Remove a block's namespaces (the block's own and every pod sandbox), links and route.

    Used by `down` after a crash too.
    """
    listed = _run(["ip", "netns", "list"], check=False).stdout.split()
    for name in listed:
        if name == plan.netns or name.startswith(plan.netns + "-"):
            # A process left in a namespace (a crashed owner's pod) would keep it, and its veth, alive.
            for pid in _run(["ip", "netns", "pids", name], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
        if name.startswith(plan.netns + "-"):
            _run(["ip", "netns", "del", name], check=False)
    # Per-pod /32 routes must not outlive their sandbox: they would capture the next owner's addresses.
    for line in _run(["ip", "-4", "route", "show", "root", str(plan.pod_cidr)], check=False).stdout.splitlines():
        target = line.split()[0] if line.strip() else ""
        if target.endswith("/32") or (target and "/" not in target):
            _run(["ip", "route", "del", target], check=False)
    for cmd in plan.teardown_commands():
        _run(cmd, check=False)


@dataclass(frozen=True)
class PodSandbox:
    """One pod's network namespace: ``eth0`` with the pod address, a veth to the host."""

    netns: str
    host_veth: str
    ip: str
    host_ip: str
    # With the block's pod CIDR, pods reach each other: a route to the CIDR via the host end, and IPv4
    # forwarding switched on for this host end only (the machine's global ip_forward is left alone).
    pod_cidr: str | None = None

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def setup_commands(self) -> list[list[str]]:
        inside = ["ip", "-n", self.netns]
        return [
            ["ip", "netns", "add", self.netns],
            [*inside, "link", "set", "lo", "up"],
            ["ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns],
            ["ip", "addr", "add", f"{self.host_ip}/32", "dev", self.host_veth],
            ["ip", "link", "set", self.host_veth, "up"],
            [*inside, "addr", "add", f"{self.ip}/32", "dev", "eth0"],
            [*inside, "link", "set", "eth0", "up"],
            [*inside, "route", "add", f"{self.host_ip}/32", "dev", "eth0"],
            ["ip", "route", "replace", f"{self.ip}/32", "dev", self.host_veth],
            *([[*inside, "route", "add", self.pod_cidr, "via", self.host_ip, "dev", "eth0"],
               ["sysctl", "-qw", f"net.ipv4.conf.{self.host_veth}.forwarding=1"]] if self.pod_cidr else []),
        ]

    def add_address(self, address: str) -> None:
        """An extra address on the sandbox's loopback (for a Service IP the bridge serves)."""
        _run(["ip", "-n", self.netns, "addr", "add", f"{address}/32", "dev", "lo"], check=False)

    def destroy(self) -> None:
        """Remove the veth pair (and with it the host route), then the namespace."""
        _run(["ip", "link", "del", self.host_veth], check=False)
        _run(["ip", "netns", "del", self.netns], check=False)


class PodNetwork:
    """One block of the pod network, owned by this process while the lock file is held."""

    def __init__(self, plan: PodNetPlan, lock_fd: int) -> None:
        self.plan = plan
        self._lock_fd = lock_fd
        self._lock = threading.Lock()
        self._free = iter(plan.pod_ips())
        self._released: list[str] = []
        self._sandboxes = 0

    @classmethod
    def create(cls) -> PodNetwork:
        """Take the first free block, clear leftovers of a crashed owner, and build the namespace."""
        if os.geteuid() != 0:
            raise PodNetworkError("the pod network needs root (ip netns, veth, routes)")
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for index in range(BLOCK_COUNT):
            fd = os.open(LOCK_DIR / f"block-{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            plan = PodNetPlan(index)
            teardown(plan)  # a previous owner may have died without cleaning up
            try:
                for cmd in plan.setup_commands():
                    _run(cmd)
            except PodNetworkError:
                teardown(plan)
                os.close(fd)
                raise
            return cls(plan, fd)
        raise PodNetworkError(f"all {BLOCK_COUNT} pod network blocks are in use ({LOCK_DIR})")

    @property
    def netns(self) -> str:
        return self.plan.netns

    @property
    def host_ip(self) -> str:
        return self.plan.host_ip

    def netns_path(self) -> str:
        return f"/var/run/netns/{self.plan.netns}"

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return ["ip", "netns", "exec", self.plan.netns]

    def allocate_ip(self) -> str:
        """A fresh pod address, live on the namespace's loopback device."""
        address = self.allocate_address()
        _run([*self.exec_prefix(), "ip", "addr", "add", f"{address}/32", "dev", "lo"])
        return address

    def create_sandbox(self) -> PodSandbox:
        """A network namespace of its own for one pod, with a fresh pod address on ``eth0``.

        Pods get separate namespaces (as on a real node), so two pods can both listen on 0.0.0.0:8000.
        The host reaches the pod over a veth pair: a /32 route to the pod address on the host end, and
        on the pod end a /32 route back to the host end's address (which every host end shares).
        """
        address = self.allocate_address()
        with self._lock:
            self._sandboxes += 1
            number = self._sandboxes
        sandbox = PodSandbox(f"{self.plan.netns}-{number}", f"sop{self.plan.index}x{number}", address,
                             self.plan.host_ip, str(self.plan.pod_cidr))
        try:
            for cmd in sandbox.setup_commands():
                _run(cmd)
        except PodNetworkError:
            sandbox.destroy()
            raise
        return sandbox

    def allocate_address(self) -> str:
        """The next free pod address of the block (not yet placed anywhere)."""
        with self._lock:
            return self._released.pop(0) if self._released else next(self._free)

    def add_address(self, address: str) -> None:
        """Put an extra address (for example a Service IP the bridge serves) on the namespace's lo."""
        _run([*self.exec_prefix(), "ip", "addr", "add", f"{address}/32", "dev", "lo"], check=False)

    def release_address(self, address: str) -> None:
        """Give a sandbox's address back to the pool (its namespace is already gone)."""
        with self._lock:
            self._released.append(address)

    def release_ip(self, address: str) -> None:
        _run([*self.exec_prefix(), "ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)
        with self._lock:
            self._released.append(address)

    def destroy(self) -> None:
        teardown(self.plan)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


# --- loopback bridge ---------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in_netns(netns_path: str, address: str, port: int) -> socket.socket:
    """A listening TCP socket that lives in another network namespace.

    A socket stays in the namespace it was created in, so a helper thread switches into the namespace,
    creates and binds the socket, and ends; the caller's thread never changes namespace.
    """
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            with open(netns_path) as target:
                _setns(target.fileno())
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(128)
            result.append(sock)
        except BaseException as err:  # handed to the caller
            result.append(err)

    # The thread ends inside the other namespace; a thread's namespace dies with it.
    worker = threading.Thread(target=make, daemon=True)
    worker.start()
    worker.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise PodNetworkError(f"cannot listen on {address}:{port} in {netns_path}: {outcome}")
    return outcome


class _Splice:
    """Copies bytes both ways between two sockets; the direction that ends last closes both."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self._sockets = (a, b)
        self._open = 2
        self._lock = threading.Lock()
        for src, dst in ((a, b), (b, a)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._lock:
                self._open -= 1
                last = self._open == 0
            if last:
                for sock in self._sockets:
                    sock.close()


class LoopbackBridge:
    """Forwards connections made inside the pod namespace to host loopback ports.

    ``routes`` maps (address, port) inside the namespace to a port on the host's 127.0.0.1. This is the
    one piece of "service proxy" the stand-in needs: pods reach the control plane and the test servers
    (API server, MinIO, registry) exactly where host processes reach them.
    """

    def __init__(self, network: PodNetwork | PodSandbox) -> None:
        self.network = network
        self._listeners: list[socket.socket] = []
        self._closed = threading.Event()

    def add(self, ns_address: str, ns_port: int, host_port: int) -> None:
        if ns_address != "127.0.0.1":
            self.network.add_address(ns_address)
        path = self.network.netns_path if isinstance(self.network, PodSandbox) else self.network.netns_path()
        listener = listen_in_netns(path, ns_address, ns_port)
        self._listeners.append(listener)
        threading.Thread(target=self._accept, args=(listener, host_port), daemon=True,
                         name=f"bridge-{ns_address}:{ns_port}").start()

    def _accept(self, listener: socket.socket, host_port: int) -> None:
        while not self._closed.is_set():
            try:
                inner, _ = listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", host_port), timeout=10)
                outer.settimeout(None)
            except OSError:
                inner.close()
                continue
            _Splice(inner, outer)

    def close(self) -> None:
        self._closed.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.close()
