"""pytest plugin: the ``local_cluster`` session fixture and component logs on failure.

Register it in tests/conftest.py with ``pytest_plugins = ["tests.controlplane.fixtures"]``.

* ``SENSEOPS_KUBECONFIG=/path/to/kubeconfig`` reuses a running cluster (for example `make cluster-up`'s
  `.cluster/kubeconfig`) instead of starting one.
* Otherwise one control plane is started per pytest session under `.cluster/pytest-<pid>/` (so parallel
  sessions in one checkout never share ports or data) and stopped at the end.
* When any test of the session failed, the last lines of every component's log are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.cluster import DEFAULT_ROOT, ClusterError, LocalCluster, kubectl_binary
from tests.controlplane.components import COMPONENT_ORDER

LOG_TAIL_LINES = 40
_LOG_DIR_KEY = pytest.StashKey[Path]()


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message holds the command and its stderr."""


@dataclass(frozen=True)
class ClusterHandle:
    """What tests get: the admin kubeconfig and a kubectl runner bound to it."""

    kubeconfig: Path
    log_dir: Path | None

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl with ``--kubeconfig``; raise KubectlError on failure when ``check``."""
        cmd = [kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubectlError(f"`kubectl {' '.join(args)}` exited {result.returncode}:\n"
                               f"{result.stderr.strip()}\n{result.stdout.strip()}")
        return result

    def get_json(self, *args: str) -> Any:
        """``kubectl get ARGS -o json`` parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def log_tails(log_dir: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of every component log under ``log_dir``, one section each."""
    sections = []
    for name in COMPONENT_ORDER:
        path = log_dir / f"{name}.log"
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            sections.append(f"----- {path} (last {len(tail)} lines) -----\n" + "\n".join(tail))
    return "\n".join(sections)


def _reap_abandoned_sessions() -> None:
    """Stop clusters left by pytest sessions that were killed before their teardown ran."""
    for root in DEFAULT_ROOT.glob("pytest-*"):
        owner = root.name.removeprefix("pytest-")
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            LocalCluster(root).down()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    """A ready local control plane for the whole session (started here unless SENSEOPS_KUBECONFIG)."""
    external = os.environ.get("SENSEOPS_KUBECONFIG")
    if external:
        kubeconfig = Path(external).resolve()
        log_dir = kubeconfig.parent / "logs"
        request.config.stash[_LOG_DIR_KEY] = log_dir
        yield ClusterHandle(kubeconfig, log_dir if log_dir.is_dir() else None)
        return

    _reap_abandoned_sessions()
    cluster = LocalCluster(DEFAULT_ROOT / f"pytest-{os.getpid()}")
    request.config.stash[_LOG_DIR_KEY] = cluster.layout.logs
    try:
        cluster.up()
    except ClusterError as err:
        cluster.down()
        pytest.fail(f"local control plane did not start: {err}\n{log_tails(cluster.layout.logs)}",
                    pytrace=False)
    try:
        yield ClusterHandle(cluster.kubeconfig, cluster.layout.logs)
    finally:
        cluster.down()
        # Logs stay only when something failed (the summary hook prints and points at them).
        if request.session.testsfailed == 0:
            shutil.rmtree(cluster.layout.root, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After a session with failures, show what the control plane components were saying."""
    log_dir = config.stash.get(_LOG_DIR_KEY, None)
    failed = terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")
    if log_dir is None or not failed or not log_dir.is_dir():
        return
    terminalreporter.section("local control plane logs")
    terminalreporter.write_line(log_tails(log_dir))
