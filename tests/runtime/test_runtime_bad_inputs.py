"""Bad inputs against a real server: each gets its defined code and message, and the server stays healthy.

WebSocket cases expect a close code and a reason fragment; HTTP cases a status and a message fragment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import httpx
import jwt
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.runtime.conftest import MAX_UPLOAD_BYTES, QUOTA_MINUTES, WS_IDLE_TIMEOUT_S, make_token
from tests.runtime.helpers import ENGLISH, sentence_wav, stream, utterance_pcm, wav_bytes
from tests.runtime.server import TEST_SECRET, RuntimeServer


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "bad-input",
        "anchor_id": "bad-input",
        "scopes": ["stream", "transcribe"],
        "aud": "senseops-runtime",
        "iss": "senseops",
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def _alg_none() -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(_claims())}."


SILENCE = np.zeros(16_000 * 2, dtype=np.float32)


async def _raw_session(url: str, token: str | None, messages: list[str | bytes]) -> tuple[int | None, str]:
    """Send raw messages (no pacing) and return the server's close code and reason."""
    full = url + (f"?token={token}" if token else "")
    async with connect(full, proxy=None, max_size=2**20) as ws:
        try:
            for message in messages:
                await ws.send(message)
            async for _ in ws:
                pass
        except Exception:
            pass
        await ws.wait_closed()
        return ws.close_code, ws.close_reason or ""


def ws_case(url: str, token: str | None, messages: list[str | bytes]) -> tuple[int | None, str]:
    return asyncio.run(_raw_session(url, token, messages))


FRAME = b"\x00\x01" * 1600  # 100 ms of near-silence

WS_CASES = [
    ("no token", None, [FRAME], 1008, "missing token"),
    ("garbage token", "abc.def", [FRAME], 1008, "malformed token"),
    ("expired token", jwt.encode(_claims(exp=int(time.time()) - 3600), TEST_SECRET, "HS256"), [FRAME], 1008, "expired"),
    (
        "forged token",
        jwt.encode(_claims(), "not-the-server-secret-xxxxxxxxxxxxxxxx", "HS256"),
        [FRAME],
        1008,
        "signature",
    ),
    ("alg none", _alg_none(), [FRAME], 1008, "algorithm 'none'"),
    ("wrong audience", jwt.encode(_claims(aud="other"), TEST_SECRET, "HS256"), [FRAME], 1008, "audience"),
    ("no stream scope", None, [FRAME], 1008, "'stream' scope"),  # token filled in below
    ("odd-length frame", "ok", [FRAME, b"\x00" * 3201], 1007, "not whole 16-bit samples"),
    ("text where audio expected", "ok", [FRAME, "hello"], 1003, "text frame where audio was expected"),
    ("oversize frame", "ok", [b"\x00" * 64_002], 1007, "exceeds"),
    ("wrong sample rate", "ok", [json.dumps({"sample_rate": 8000}), FRAME], 1003, "sample_rate 8000 not supported"),
    ("options not JSON", "ok", ["{language: zh"], 1007, "not JSON"),
    ("unknown option", "ok", [json.dumps({"speed": 2})], 1007, "unknown option"),
]


@pytest.mark.parametrize(("name", "token", "messages", "code", "reason"), WS_CASES, ids=[c[0] for c in WS_CASES])
def test_ws_bad_input(
    runtime_server: RuntimeServer, name: str, token: str | None, messages: list[str | bytes], code: int, reason: str
) -> None:
    if token == "ok":
        token = make_token()
    if name == "no stream scope":
        token = make_token(scopes=["transcribe"])
    got_code, got_reason = ws_case(runtime_server.ws, token, messages)
    assert (got_code, reason in got_reason) == (code, True), got_reason
    assert httpx.get(f"{runtime_server.http}/readyz").status_code == 200


def test_ws_silence_only_closes_normally_without_transcripts(runtime_server: RuntimeServer) -> None:
    outcome = stream(runtime_server.ws, b"\x00\x00" * 16_000 * 2, make_token(), realtime=False)
    assert (outcome.close_code, outcome.close_reason) == (1000, "end of stream")
    assert outcome.partials == [] and outcome.finals == []


def test_ws_idle_stream_is_closed_with_1008_and_its_audio_still_gets_a_final(runtime_server: RuntimeServer) -> None:
    speech = utterance_pcm(ENGLISH, after_s=0.0)  # the segment is still open when the client goes quiet

    async def scenario() -> tuple[int | None, str, list[dict[str, object]], float]:
        async with connect(f"{runtime_server.ws}?token={make_token()}", proxy=None) as ws:
            await ws.send(json.dumps({"itn": False}))
            for i in range(0, len(speech), 3200):
                await ws.send(speech[i : i + 3200])
            quiet_since = time.monotonic()
            messages: list[dict[str, object]] = []
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    messages.append(json.loads(raw))
            return ws.close_code, ws.close_reason or "", messages, time.monotonic() - quiet_since

    code, reason, messages, waited = asyncio.run(scenario())
    assert code == 1008 and "idle" in reason, reason
    assert waited >= WS_IDLE_TIMEOUT_S * 0.9
    assert [m["final"] for m in messages if "final" in m] == [ENGLISH.text]


def test_ws_concurrent_stream_limit(runtime_server: RuntimeServer) -> None:
    token = make_token(sub="t-concurrent")

    async def scenario() -> tuple[int | None, str]:
        url = f"{runtime_server.ws}?token={token}"
        async with connect(url, proxy=None) as first, connect(url, proxy=None) as second:
            await first.send(FRAME)
            await second.send(FRAME)
            await asyncio.sleep(0.3)
            return await _raw_session(runtime_server.ws, token, [FRAME])

    code, reason = asyncio.run(scenario())
    assert code == 1008 and "concurrent stream limit" in reason
    # Once the two streams are gone the subject may stream again.
    time.sleep(0.5)
    outcome = stream(runtime_server.ws, utterance_pcm(ENGLISH), token, realtime=False)
    assert outcome.close_code == 1000


def test_audio_budget_exceeded(runtime_server: RuntimeServer) -> None:
    token = make_token(sub="t-budget")
    minutes = np.zeros(int(16_000 * 60 * QUOTA_MINUTES), dtype=np.float32)
    # 8 kHz keeps the upload under the byte limit; the server resamples and meters the duration.
    upload = httpx.post(
        f"{runtime_server.http}/api/transcribe",
        files={"file": ("long.wav", wav_bytes(minutes[::2], rate=8_000), "audio/wav")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert upload.status_code == 200, upload.text  # exactly the budget: allowed, and silence -> no speech
    assert upload.json()["no_speech"] is True and upload.json()["text"] == ""
    again = httpx.post(
        f"{runtime_server.http}/api/transcribe",
        files={"file": ("s.wav", sentence_wav(ENGLISH), "audio/wav")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert again.status_code == 429 and "budget" in again.json()["detail"]
    code, reason = ws_case(runtime_server.ws, token, [FRAME])
    assert code == 1008 and "budget" in reason


def _post(server: RuntimeServer, token: str | None = "ok", **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {make_token() if token == 'ok' else token}"} if token else {}
    return httpx.post(f"{server.http}/api/transcribe", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


HTTP_CASES = [
    ("no token", {"token": None, "json": {"file_path": "s3://x/y.wav"}}, 401, "missing token"),
    ("etc passwd", {"json": {"file_path": "/etc/passwd"}}, 400, "paths on the server are not accepted"),
    ("file uri", {"json": {"file_path": "file:///etc/passwd"}}, 400, "paths on the server are not accepted"),
    ("metadata url", {"json": {"file_path": "http://169.254.169.254/latest/meta-data/"}}, 400, "URLs are not fetched"),
    ("https url", {"json": {"file_path": "https://example.com/a.wav"}}, 400, "URLs are not fetched"),
    ("bucket not allowed", {"json": {"file_path": "s3://other-bucket/audio/a.wav"}}, 403, "outside the storage"),
    ("traversal", {"json": {"file_path": "s3://other-bucket/audio/../a.wav"}}, 400, "'..'"),
    ("json without file_path", {"json": {"path": "x"}}, 422, "file_path"),
    ("not json", {"content": b"{nope", "headers_ct": "application/json"}, 400, "not valid JSON"),
    ("wrong content type", {"content": b"abc", "headers_ct": "text/plain"}, 415, "multipart/form-data"),
    (
        "not audio",
        {"files": {"file": ("x.wav", b"this is not audio at all" * 10, "audio/wav")}},
        422,
        "could not decode",
    ),
    ("empty file", {"files": {"file": ("x.wav", b"", "audio/wav")}}, 422, "empty"),
    ("oversize upload", {"files": {"file": ("x.wav", b"\0" * (MAX_UPLOAD_BYTES + 10), "audio/wav")}}, 413, "limit is"),
    (
        "too long",
        {"files": {"file": ("x.wav", wav_bytes(np.zeros(8_000 * 100, np.float32), rate=8_000), "audio/wav")}},
        422,
        "the limit is 90 s",
    ),
    (
        "sample rate too low",
        {"files": {"file": ("x.wav", wav_bytes(np.zeros(4_000, np.float32), rate=4_000), "audio/wav")}},
        422,
        "below 8000 Hz",
    ),
    (
        "bad language",
        {"files": {"file": ("x.wav", wav_bytes(SILENCE), "audio/wav")}, "data": {"language": "xx"}},
        422,
        "language",
    ),
    ("no file field", {"files": {"other": ("x.wav", wav_bytes(SILENCE), "audio/wav")}}, 422, "'file' field"),
    (
        "NaN samples",
        {"files": {"file": ("x.wav", wav_bytes(np.full(16_000, np.nan, np.float32), subtype="FLOAT"), "audio/wav")}},
        422,
        "NaN or infinite",
    ),
    (
        "too many channels",
        {"files": {"file": ("x.wav", wav_bytes(np.zeros((1_600, 32), np.float32)), "audio/wav")}},
        422,
        "32 channels",
    ),
]


@pytest.mark.parametrize(("name", "kwargs", "status", "message"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_http_bad_input(
    runtime_server: RuntimeServer, name: str, kwargs: dict[str, object], status: int, message: str
) -> None:
    kwargs = dict(kwargs)
    token = kwargs.pop("token", "ok")
    content_type = kwargs.pop("headers_ct", None)
    headers = {"Authorization": f"Bearer {make_token()}"} if token == "ok" else {}
    if content_type:
        headers["Content-Type"] = str(content_type)
    reply = httpx.post(f"{runtime_server.http}/api/transcribe", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]
    assert reply.status_code == status, reply.text
    assert message in reply.json()["detail"]
    assert httpx.get(f"{runtime_server.http}/healthz").status_code == 200


def test_http_silence_is_no_speech(runtime_server: RuntimeServer) -> None:
    reply = _post(runtime_server, files={"file": ("s.wav", wav_bytes(SILENCE), "audio/wav")})
    assert reply.status_code == 200
    assert reply.json()["no_speech"] is True and reply.json()["text"] == ""


def test_stored_uri_missing_object(runtime_server: RuntimeServer, runtime_bucket: str) -> None:
    reply = _post(runtime_server, json={"file_path": f"s3://{runtime_bucket}/audio/missing.wav"})
    assert reply.status_code == 404 and "no stored audio" in reply.json()["detail"]


def test_server_still_serves_after_bad_inputs(runtime_server: RuntimeServer) -> None:
    assert runtime_server.alive()
    outcome = stream(runtime_server.ws, utterance_pcm(ENGLISH), make_token(), realtime=False, options={"itn": False})
    assert outcome.close_code == 1000
    assert [m["final"] for _, m in outcome.finals] == [ENGLISH.text]
