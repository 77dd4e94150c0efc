"""The real HAProxy with the configurations the stand-in renders, without a cluster: backends on loopback
addresses (127.0.0.x). Proves the two ways the stand-in changes a running proxy drop no request:
runtime-API commands (weights, endpoint slots) and the seamless master-worker reload.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.haproxy import HAProxy
from tests.gateway.haproxy_config import ProxyConfig, realize, render, runtime_changes
from tests.gateway.helpers import LoadLoop, split
from tests.gateway.model import ObjectKey, PathMatch
from tests.gateway.translate import (
    BackendPlan,
    DataplanePlan,
    FrontendPlan,
    RoutingEntry,
    ServiceGroup,
    Target,
    spread_weights,
)
from tests.servers._proc import free_port, stop_process, wait_http_ok

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (make debian)")
ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = ["127.0.0.21", "127.0.0.22", "127.0.0.23"]


@pytest.fixture(scope="module")
def loopback_backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    log = (tmp_path_factory.mktemp("backends") / "backend.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "tests.gateway.backend", *(f"{a}:{port}" for a in ADDRESSES)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log)
    try:
        for address in ADDRESSES:
            wait_http_ok(f"http://{address}:{port}/", timeout_s=60, proc=proc)
        yield port
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[HAProxy]:
    haproxy = HAProxy(tmp_path)
    try:
        yield haproxy
    finally:
        haproxy.stop()


def plan(port: int, listen: int, a: list[str], b: list[str], wa: int, wb: int, routes: int = 1) -> DataplanePlan:
    weights = spread_weights([(wa, len(a)), (wb, len(b))])
    groups = (ServiceGroup("svc-a", ObjectKey("t", "svc-a"), wa, tuple(Target(x, port) for x in a), weights[0]),
              ServiceGroup("svc-b", ObjectKey("t", "svc-b"), wb, tuple(Target(x, port) for x in b), weights[1]))
    backends = tuple(BackendPlan(f"route.t.r{i}.0", groups) for i in range(routes))
    entries = tuple(RoutingEntry((), PathMatch("PathPrefix", f"/extra{i}" if i else "/"), f"route.t.r{i}.0")
                    for i in reversed(range(routes)))
    return DataplanePlan((FrontendPlan("gw.t.web.http", "k", listen, entries),), backends)


def test_weighted_split_is_exact_and_runtime_changes_drop_nothing(loopback_backends: int, proxy: HAProxy) -> None:
    a, b, c = ADDRESSES
    listen, metrics = free_port(), free_port()
    config = realize(plan(loopback_backends, listen, [a], [b], 90, 10), metrics)
    proxy.start(render(config, proxy.paths))
    assert split(listen, 1000) == {a: 900, b: 100}
    worker = proxy.worker_pid()

    def change(new: ProxyConfig) -> None:
        commands = runtime_changes(config, new)
        assert commands, "expected a runtime-only change"
        proxy.apply(commands)

    with LoadLoop(listen) as load:
        time.sleep(0.3)
        new = realize(plan(loopback_backends, listen, [a], [b], 50, 50), metrics, config)
        change(new)
        config = new
        time.sleep(0.3)
        new = realize(plan(loopback_backends, listen, [c], [b], 50, 50), metrics, config)  # a's pod replaced by c
        change(new)
        config = new
        time.sleep(0.3)
        new = realize(plan(loopback_backends, listen, [c], [], 50, 50), metrics, config)  # b: no ready endpoint
        change(new)
        config = new
        time.sleep(0.3)
    assert load.failed == 0, load.errors[:5]
    assert proxy.worker_pid() == worker, "runtime changes must not restart the worker"
    assert split(listen, 200) == {c: 200}


def test_seamless_reload_drops_nothing(loopback_backends: int, proxy: HAProxy) -> None:
    a, b, _ = ADDRESSES
    listen, metrics = free_port(), free_port()
    config = realize(plan(loopback_backends, listen, [a], [b], 1, 1), metrics)
    proxy.start(render(config, proxy.paths))
    workers = {proxy.worker_pid()}
    with LoadLoop(listen) as load:
        for routes in range(2, 10):  # a new route each time: a structural change, so a reload
            time.sleep(0.3)
            new = realize(plan(loopback_backends, listen, [a], [b], 1, 1, routes=routes), metrics, config)
            assert runtime_changes(config, new) is None
            proxy.reload(render(new, proxy.paths))
            workers.add(proxy.worker_pid())
            config = new
        time.sleep(0.3)
    assert len(workers) == 9, "every reload starts a new worker"
    assert load.failed == 0, load.errors[:5]
    assert split(listen, 10, path="/extra8/x") == {a: 5, b: 5}
