"""Graceful drain of a real runtime process on SIGTERM (tiny model, recordings into MinIO).

Streams that are open when the signal comes get the finals of everything they sent, then a 1012 close; a
request in flight finishes; new streams and requests are refused with 1012 and 503 + Retry-After; the spool
is uploaded; the process exits 0 before the drain timeout runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from senseops_common.storage import open_store
from senseops_common.storage.config import StoreConfig
from senseops_runtime.client import StreamOutcome, pcm_frames, stream_pcm
from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, sentence_wav, utterance_pcm
from tests.runtime.server import TEST_SECRET, RuntimeServer
from tests.servers.minio import MinioServer

pytestmark = pytest.mark.model

DRAIN_TIMEOUT_S = 12.0
SEGMENT_GRACE_S = 5.0
STREAMS = 3
UTTERANCES = 6  # per stream: far more than is sent before the drain closes it


async def _slow_upload(url: str, token: str, release: asyncio.Event, started: asyncio.Event) -> httpx.Response:
    """POST /api/transcribe whose body stops half-way until ``release``: a request in flight during the drain."""
    boundary = "drain" + secrets.token_hex(8)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    body = head + sentence_wav(ENGLISH) + f"\r\n--{boundary}--\r\n".encode()
    half = len(body) // 2

    async def content():  # type: ignore[no-untyped-def]
        yield body[:half]
        started.set()
        await release.wait()
        yield body[half:]

    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            f"{url}/api/transcribe",
            content=content(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )


async def _refused_stream(ws_url: str, token: str) -> tuple[int | None, str]:
    ws = await connect(f"{ws_url}?token={token}", proxy=None)
    with contextlib.suppress(ConnectionClosed):
        await ws.send('{"language": "auto"}')
        async for _ in ws:
            pass
    return ws.close_code, ws.close_reason or ""


def test_sigterm_drains_streams_requests_and_recordings_then_exits_zero(
    tiny_model_dir: Path, minio_server: MinioServer, runtime_bucket: str, tmp_path: Path
) -> None:
    env = {
        **minio_server.store_env(),
        "SENSEOPS_MODEL_URI": f"file://{tiny_model_dir}",
        "SENSEOPS_MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
        "SENSEOPS_BACKEND": "torch",
        "SENSEOPS_JWT_HS256_SECRET": TEST_SECRET,
        "SENSEOPS_MAX_STREAMS_PER_SUBJECT": "4",
        "SENSEOPS_RECORDING_ENABLED": "true",
        "SENSEOPS_RECORDING_STORE_URI": f"s3://{runtime_bucket}/",
        "SENSEOPS_SPOOL_DIR": str(tmp_path / "spool"),
        "SENSEOPS_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
        "SENSEOPS_DRAIN_SEGMENT_GRACE_S": str(SEGMENT_GRACE_S),
    }
    server = RuntimeServer(env, tmp_path / "runtime.log").start()
    anchor = "anchor-drain-" + secrets.token_hex(4)
    pcm = utterance_pcm(ENGLISH, before_s=0.4, after_s=1.0) * UTTERANCES
    try:
        assert server.proc is not None
        proc = server.proc

        async def scenario() -> tuple[list[StreamOutcome], httpx.Response, dict[str, object]]:
            streams = [
                asyncio.create_task(
                    stream_pcm(
                        server.ws,
                        pcm_frames(pcm, 100),
                        token=make_token(anchor=anchor, consent=True),
                        options={"itn": False},
                    )
                )
                for _ in range(STREAMS)
            ]
            # Connected, but no first message yet: the drain must not wait for its options timeout.
            silent = await connect(f"{server.ws}?token={make_token()}", proxy=None)
            release, upload_started = asyncio.Event(), asyncio.Event()
            upload = asyncio.create_task(_slow_upload(server.http, make_token(), release, upload_started))
            await asyncio.wait_for(upload_started.wait(), 60)
            await asyncio.sleep(4.0)  # every stream is well into its audio
            proc.send_signal(signal.SIGTERM)
            seen: dict[str, object] = {}
            async with httpx.AsyncClient(timeout=10) as client:
                deadline = time.monotonic() + DRAIN_TIMEOUT_S
                while (ready := await client.get(f"{server.http}/readyz")).status_code == 200:
                    assert time.monotonic() < deadline, "/readyz still 200 after SIGTERM"
                    await asyncio.sleep(0.05)
                seen["readyz"] = (ready.status_code, ready.json()["reason"])
                seen["healthz"] = (await client.get(f"{server.http}/healthz")).status_code
                refused = await client.post(f"{server.http}/api/transcribe", headers={"Authorization": "Bearer x"})
                seen["http"] = (refused.status_code, refused.headers.get("retry-after"), refused.json()["detail"])
            seen["ws"] = await _refused_stream(server.ws, make_token())
            release.set()  # the request that was in flight finishes
            outcomes = await asyncio.gather(*streams)
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait_for(silent.recv(), 30)
            seen["silent"] = silent.close_code
            return outcomes, await upload, seen

        outcomes, upload, seen = asyncio.run(scenario())
        code = proc.wait(timeout=DRAIN_TIMEOUT_S + 15)  # a deadline, not a measurement
    finally:
        log = server.log_tail(60)
        server.stop()

    assert code == 0, f"exit code {code}; log:\n{log}"
    ready_code, reason = seen["readyz"]  # type: ignore[misc]
    assert ready_code == 503 and "draining" in str(reason)
    assert seen["healthz"] == 200, "liveness must hold while draining"
    status, retry_after, detail = seen["http"]  # type: ignore[misc]
    assert (status, retry_after) == (503, "1") and "draining" in str(detail)
    ws_code, ws_reason = seen["ws"]  # type: ignore[misc]
    assert ws_code == 1012 and "draining" in str(ws_reason)
    assert seen["silent"] == 1012, "a stream still waiting for its first message is drained too"
    assert upload.status_code == 200, upload.text
    assert upload.json()["text"] == ENGLISH.text_itn  # ITN is on by default

    finals = []
    for outcome in outcomes:
        assert outcome.close_code == 1012, (outcome.close_code, outcome.close_reason, log)
        assert "draining" in outcome.close_reason
        texts = [m["final"] for _, m in outcome.finals]
        # Cut between utterances (each finished within the grace), so each final is a whole sentence...
        assert texts and all(t == ENGLISH.text for t in texts), texts
        # ...and the stream was cut before its audio ran out: the drain, not the end of the clip, closed it.
        assert len(texts) < UTTERANCES
        finals += [m for _, m in outcome.finals]

    # The spool was flushed before exit: one WAV per final in the store.
    store = open_store(f"s3://{runtime_bucket}/", StoreConfig.from_env(minio_server.store_env()))
    wavs = {o.key.rsplit("/", 1)[-1].removesuffix(".wav") for o in store.list(f"raw/{anchor}/")}
    assert wavs == {str(m["segment_id"]) for m in finals}
