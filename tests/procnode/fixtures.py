"""pytest plugin: the ``process_node`` session fixture (a kubelet stand-in on the local cluster).

Pods opt in with ``nodeSelector: {senseops.dev/process-node: "true"}`` and a toleration for the
``senseops.dev/process-node`` taint (see :data:`PLACEMENT`). The node's container logs are printed
at the end of a session with failures.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.cluster import bin_dir
from tests.controlplane.fixtures import ClusterHandle
from tests.procnode.launcher import ProcessNodeHandle
from tests.procnode.node import NODE_LABEL, TAINT

# Merge into a pod spec to run it on the process node.
PLACEMENT: dict[str, Any] = {
    "nodeSelector": {NODE_LABEL: "true"},
    "tolerations": [{"key": TAINT["key"], "operator": "Equal", "value": TAINT["value"], "effect": TAINT["effect"]}],
}
# Tests that want crash loops to be quick; the kubelet default (10 s) stays the default elsewhere.
TEST_BACKOFF_BASE_S = 2.0
_HANDLE_KEY = pytest.StashKey[ProcessNodeHandle]()


@pytest.fixture(scope="session")
def process_node(local_cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[ProcessNodeHandle]:
    """A process node registered on the session's cluster; stopped (with all its pods' processes) at the end."""
    kubeconfig = Path(local_cluster.kubeconfig)
    state = kubeconfig.parent / f"procnode-{os.getpid()}"
    handle = ProcessNodeHandle(state, kubeconfig)
    request.config.stash[_HANDLE_KEY] = handle
    try:
        handle.up(bin_dir(), backoff_base_s=TEST_BACKOFF_BASE_S)
    except RuntimeError as err:
        handle.down()
        pytest.fail(str(err), pytrace=False)
    try:
        yield handle
    finally:
        handle.down()
        if request.session.testsfailed == 0:
            shutil.rmtree(state, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    handle = config.stash.get(_HANDLE_KEY, None)
    failed = terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")
    if handle is None or not failed or not handle.state_dir.is_dir():
        return
    terminalreporter.section("process node logs")
    terminalreporter.write_line(handle.log_tail())
    terminalreporter.write_line(handle.container_logs())
