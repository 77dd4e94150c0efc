"""Start, stop and inspect a process node from another process (make targets, pytest fixtures).

The node runs as ``python -m tests.procnode run`` in its own session, with its state under one folder:
``node.json`` (its pid and pod-network block), ``containers/*.json`` (one record per running container
process group), ``pods/*/logs/<container>.log`` and ``node.log``. :meth:`ProcessNodeHandle.down` stops
the node, then every container process group still recorded — so nothing is left behind even when
the node process itself crashed — and removes the pod network.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.procnode.podnet import PodNetPlan, teardown
from tests.procnode.procs import kill_recorded, proc_start_time

REPO = Path(__file__).resolve().parents[2]
DEFAULT_NAME = "proc-node-0"


class ProcessNodeHandle:
    """A process node rooted at ``state_dir`` (one per cluster)."""

    def __init__(self, state_dir: Path, kubeconfig: Path, name: str = DEFAULT_NAME) -> None:
        self.state_dir = state_dir.resolve()
        self.kubeconfig = kubeconfig
        self.name = name

    @property
    def log_path(self) -> Path:
        return self.state_dir / "node.log"

    def record(self) -> dict[str, object] | None:
        try:
            return dict(json.loads((self.state_dir / "node.json").read_text()))
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        rec = self.record()
        return rec is not None and proc_start_time(int(rec["pid"])) == rec.get("start")  # type: ignore[arg-type]

    def up(self, bin_dir: Path, timeout_s: float = 60.0, backoff_base_s: float | None = None) -> None:
        """Start the node (unless running) and wait for its Node object to be Ready."""
        if self.running():
            return
        self.down()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "tests.procnode", "run", "--kubeconfig", str(self.kubeconfig),
                "--name", self.name, "--state-dir", str(self.state_dir), "--bin-dir", str(bin_dir)]
        if backoff_base_s is not None:
            argv += ["--backoff-base", str(backoff_base_s)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            str(REPO / p) for p in ("operator", "runtime", "trainer_image", "."))}
        with self.log_path.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=REPO, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"process node exited ({proc.returncode}); log:\n{self.log_tail()}")
            if self._node_ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"process node not Ready after {timeout_s:.0f}s; log:\n{self.log_tail()}")

    def _node_ready(self) -> bool:
        from tests.controlplane.fixtures import kubectl_binary

        result = subprocess.run(
            [kubectl_binary(), f"--kubeconfig={self.kubeconfig}", "get",
             "node", self.name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
            capture_output=True, text=True)
        return result.returncode == 0 and result.stdout.strip() == "True" and self.running()

    def mirror(self, *ports: int) -> None:
        """Make host loopback ports reachable at the same address inside pods started from now on."""
        path = self.state_dir / "mirrors.json"
        current = set(json.loads(path.read_text())) if path.exists() else set()
        current.update(int(p) for p in ports)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(current)))
        tmp.replace(path)

    def down(self, grace_s: float = 20.0) -> None:
        """Stop the node and everything it started, even after a crash of the node process."""
        rec = self.record()
        if rec is not None and self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(rec["pid"]), signal.SIGTERM)  # type: ignore[arg-type]
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and self.running():
                time.sleep(0.1)
            if self.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(rec["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
        containers = self.state_dir / "containers"
        if containers.is_dir():
            for record in containers.glob("*.json"):
                kill_recorded(record, signal.SIGKILL)
                record.unlink(missing_ok=True)
        if rec is not None and "block" in rec:
            teardown(PodNetPlan(int(rec["block"])))  # type: ignore[arg-type]
        with contextlib.suppress(OSError):
            (self.state_dir / "node.json").unlink()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def container_logs(self, lines: int = 30) -> str:
        """The end of every container log of this node (printed by tests on failure)."""
        parts = []
        for path in sorted((self.state_dir / "pods").glob("*/logs/*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.relative_to(self.state_dir)} -----\n" + "\n".join(tail))
        return "\n".join(parts)
