"""Two real runtime replicas sharing one real redis-server: the per-subject stream limit and the audio
budget hold across replicas (in memory each replica would allow its own quota), and a replica whose Redis
goes away stays up and says so on /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, sentence_wav, stream, utterance_pcm
from tests.runtime.redis_server import RedisServer
from tests.runtime.server import TEST_SECRET, RuntimeServer

FRAME = b"\x00\x01" * 1600


@pytest.fixture(scope="module")
def shared(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[RuntimeServer], RedisServer]]:
    work = tmp_path_factory.mktemp("shared-quota")
    redis_server = RedisServer(work / "redis").start()
    env = {
        "SENSEOPS_MODEL_URI": f"file://{tiny_model_dir}",
        "SENSEOPS_MODEL_CACHE_DIR": str(work / "model-cache"),
        "SENSEOPS_JWT_HS256_SECRET": TEST_SECRET,
        "SENSEOPS_MAX_STREAMS_PER_SUBJECT": "1",
        "SENSEOPS_AUDIO_MINUTES_PER_DAY": "0.1",  # 6 s per subject per day, across replicas
        "SENSEOPS_QUOTA_REDIS_URL": redis_server.url,
        "SENSEOPS_QUOTA_FAILURE_POLICY": "open",
    }
    servers = []
    try:
        for n in range(2):
            servers.append(RuntimeServer(env, work / f"runtime-{n}.log").start())
        yield servers, redis_server
    finally:
        for server in servers:
            server.stop()
        redis_server.stop()  # the outage test stops it first; stopping twice is harmless


def _refused_while_other_replica_streams(a: RuntimeServer, b: RuntimeServer, token: str) -> tuple[int | None, str]:
    async def scenario() -> tuple[int | None, str]:
        async with connect(f"{a.ws}?token={token}", proxy=None) as first:
            await first.send(FRAME)
            await asyncio.sleep(0.5)  # admitted and counted in Redis
            async with connect(f"{b.ws}?token={token}", proxy=None) as second:
                await second.send(FRAME)
                with contextlib.suppress(ConnectionClosed):
                    async for _ in second:
                        pass
                return second.close_code, second.close_reason or ""

    return asyncio.run(scenario())


def test_stream_limit_holds_across_replicas(shared: tuple[list[RuntimeServer], RedisServer]) -> None:
    replicas, _ = shared
    token = make_token(sub="shared-streams")
    code, reason = _refused_while_other_replica_streams(replicas[0], replicas[1], token)
    assert code == 1008 and "concurrent stream limit" in reason


def test_audio_budget_holds_across_replicas(shared: tuple[list[RuntimeServer], RedisServer]) -> None:
    replicas, _ = shared
    token = make_token(sub="shared-budget")
    wav = sentence_wav(ENGLISH)  # 1.16 s: five fit into the 6 s budget, the sixth does not
    answers = []
    for n in range(8):
        reply = httpx.post(
            f"{replicas[n % 2].http}/api/transcribe",
            files={"file": ("s.wav", wav, "audio/wav")},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        answers.append(reply.status_code)
    # 6 s of budget in total across both replicas (in memory, each replica would have allowed all eight).
    assert answers == [200] * 5 + [429] * 3, answers


def test_replica_stays_up_when_redis_goes_away(shared: tuple[list[RuntimeServer], RedisServer]) -> None:
    replicas, redis_server = shared
    redis_server.stop()
    outcome = stream(replicas[0].ws, utterance_pcm(ENGLISH), make_token(), realtime=False)
    assert outcome.close_code == 1000 and len(outcome.finals) == 1  # fail open: streaming goes on
    metrics = httpx.get(f"{replicas[0].http}/metrics").text
    assert "senseops_quota_backend_up 0.0" in metrics
    assert 'senseops_quota_backend_errors_total{policy="open"}' in metrics
    assert "quota backend unreachable" in replicas[0].log_tail(200)
