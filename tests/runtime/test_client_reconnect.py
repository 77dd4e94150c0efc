"""The Python client's reconnect (``stream_pcm_resilient``) against a scripted WebSocket server on loopback.

The first connection is closed with 1012 as a draining runtime does; the client must come back with
``resume`` and ``start_offset_ms`` and replay exactly the frames no final acknowledged. The runtime side of
the same protocol is tested in test_runtime_drain.py and, through a proxy, in tests/operator.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from senseops_runtime.client import ReplayBuffer, stream_pcm_resilient

STREAM_ID = "20260301T100000Z-0123456789ab"
FRAMES = [bytes([i]) * 3200 for i in range(20)]  # 20 frames of 100 ms, each filled with its index


def test_replay_buffer_keeps_what_no_final_acknowledged() -> None:
    buffer = ReplayBuffer(max_ms=10_000)
    for frame in FRAMES[:10]:
        buffer.push(frame)
    buffer.acknowledge(450)  # the frame 400-500 ms ends after 450: kept
    assert [start for start, _ in buffer.frames] == [400, 500, 600, 700, 800, 900]
    assert buffer.replay_start_ms() == 400
    buffer.acknowledge(1000)
    assert buffer.frames == [] and buffer.replay_start_ms() == 1000
    bounded = ReplayBuffer(max_ms=300)
    for frame in FRAMES[:10]:
        bounded.push(frame)
    assert [start for start, _ in bounded.frames] == [700, 800, 900]


async def _frames_until_eof(ws: ServerConnection) -> list[bytes]:
    frames = []
    async for message in ws:
        if isinstance(message, str):
            assert json.loads(message) == {"eof": True}
            return frames
        frames.append(message)
    return frames


# The scripted server never pauses reading (max_queue=None): a real runtime reads every frame, and a paused
# reader would not see the client's close reply behind unread frames until its close timeout.


def test_a_1012_close_reconnects_resumes_and_replays_unacknowledged_audio() -> None:
    connections: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        options = json.loads(await ws.recv())
        seen: dict[str, Any] = {"options": options}
        connections.append(seen)
        await ws.send(json.dumps({"stream_id": STREAM_ID, "resumed": "resume" in options}))
        if len(connections) == 1:
            seen["frames"] = [await ws.recv() for _ in range(10)]
            await ws.send(json.dumps({"final": "first", "segment_id": "a", "start_ms": 100, "end_ms": 450}))
            await ws.close(1012, "server draining (shutting down); reconnect")
            return
        seen["frames"] = await _frames_until_eof(ws)
        await ws.send(json.dumps({"final": "second", "segment_id": "b", "start_ms": 600, "end_ms": 1900}))
        await ws.close(1000, "end of stream")

    async def scenario() -> Any:
        async with serve(handler, "127.0.0.1", 0, max_queue=None) as server:
            port = server.sockets[0].getsockname()[1]
            return await stream_pcm_resilient(
                f"ws://127.0.0.1:{port}/ws/stream",
                FRAMES,
                token="t",
                options={"itn": False},
                realtime=False,
                backoff_s=0.01,
            )

    outcome = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert outcome.close_codes == [1012, 1000] and outcome.reconnects == 1
    assert [m["final"] for _, m in outcome.finals] == ["first", "second"]
    first, second = connections
    assert first["options"] == {"itn": False, "start_offset_ms": 0}
    assert second["options"] == {"itn": False, "start_offset_ms": 400, "resume": STREAM_ID}
    # From the first frame that ends after the acknowledged 450 ms to the end, each exactly once.
    assert second["frames"] == FRAMES[4:]


def test_a_policy_close_is_not_retried() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(1008, "token expired")

    async def scenario() -> Any:
        async with serve(handler, "127.0.0.1", 0, max_queue=None) as server:
            port = server.sockets[0].getsockname()[1]
            return await stream_pcm_resilient(
                f"ws://127.0.0.1:{port}/ws/stream", FRAMES, realtime=False, backoff_s=0.01
            )

    outcome = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert outcome.close_codes == [1008] and outcome.reconnects == 0
    assert outcome.close_reason == "token expired"
