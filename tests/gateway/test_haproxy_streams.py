"""WebSocket streams keep their server across weight changes, endpoint removal and reloads (real HAProxy,
loopback backends, no cluster): weight changes apply to new streams only.

This is what lets a Rollout move traffic while live ASR streams stay on the model version they started on;
the pod that loses traffic then drains them itself (1012, see runtime/senseops_runtime/drain.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.gateway.haproxy import HAProxy
from tests.gateway.haproxy_config import realize, render, runtime_changes
from tests.gateway.test_haproxy_live import plan
from tests.servers._proc import free_port, stop_process, wait_http_ok

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (make debian)")
ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "127.0.0.31", "127.0.0.32"


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    log = (tmp_path_factory.mktemp("stream-backends") / "backend.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "tests.gateway.backend", f"{OLD}:{port}", f"{NEW}:{port}"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log)
    try:
        for address in (OLD, NEW):
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


async def _echo_from(ws: ClientConnection, text: str) -> str:
    """The backend address that answers ``text`` on this stream."""
    await ws.send(text)
    reply = str(await asyncio.wait_for(ws.recv(), 10))
    address, echoed = reply.split(" ", 1)
    assert echoed == text
    return address


def test_streams_stay_on_their_server_across_weight_changes_removal_and_reloads(
    backends: int, proxy: HAProxy
) -> None:
    listen, metrics = free_port(), free_port()
    config = realize(plan(backends, listen, [OLD], [NEW], 100, 0), metrics)
    text = render(config, proxy.paths)
    assert "hard-stop-after 1h" in text and "shutdown-sessions" not in text
    proxy.start(text)
    url = f"ws://127.0.0.1:{listen}/ws"

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        streams = [await connect(url, proxy=None) for _ in range(3)]
        seen["before"] = {await _echo_from(ws, f"s{i}") for i, ws in enumerate(streams)}
        # 1. All weight to the new side (runtime API, no reload): old streams stay, new ones go to NEW.
        nonlocal config
        new = realize(plan(backends, listen, [OLD], [NEW], 0, 100), metrics, config)
        commands = runtime_changes(config, new)
        assert commands is not None
        proxy.apply(commands)
        config = new
        seen["after_weight"] = {await _echo_from(ws, f"w{i}") for i, ws in enumerate(streams)}
        fresh = await connect(url, proxy=None)
        seen["new_stream"] = await _echo_from(fresh, "n")
        # 2. The old endpoint leaves (its slot goes to maintenance): still no stream is reset.
        new = realize(plan(backends, listen, [], [NEW], 0, 100), metrics, config)
        commands = runtime_changes(config, new)
        assert commands is not None
        proxy.apply(commands)
        config = new
        seen["after_removal"] = {await _echo_from(ws, f"r{i}") for i, ws in enumerate(streams)}
        # 3. A structural change (a new route) reloads HAProxy: the old worker keeps the streams.
        worker = proxy.worker_pid()
        new = realize(plan(backends, listen, [], [NEW], 0, 100, routes=2), metrics, config)
        assert runtime_changes(config, new) is None
        proxy.reload(render(new, proxy.paths))
        config = new
        seen["reloaded"] = proxy.worker_pid() != worker
        seen["after_reload"] = {await _echo_from(ws, f"l{i}") for i, ws in enumerate([*streams, fresh])}
        late = await connect(url, proxy=None)
        seen["late_stream"] = await _echo_from(late, "late")
        for ws in [*streams, fresh, late]:
            await ws.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["before"] == {OLD}
    assert seen["after_weight"] == {OLD}, "a weight change must not move or reset an open stream"
    assert seen["new_stream"] == NEW, "new streams follow the new weights"
    assert seen["after_removal"] == {OLD}, "maintenance must not reset an open stream"
    assert seen["reloaded"] is True
    assert seen["after_reload"] == {OLD, NEW}, "the old worker keeps serving the streams it holds"
    assert seen["late_stream"] == NEW
