"""A second server: RS256 keys and a decode queue that admits nothing, to show 1013/503 and RS256 end to end."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from senseops_runtime.auth import AuthConfig, issue_token
from tests.runtime.helpers import ENGLISH, rsa_pair, sentence_wav, stream, utterance_pcm
from tests.runtime.server import RuntimeServer


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    return rsa_pair()


@pytest.fixture(scope="module")
def overloaded_server(
    tiny_model_dir: Path, rsa_keys: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeServer]:
    work = tmp_path_factory.mktemp("runtime-overloaded")
    (work / "jwt.pub").write_text(rsa_keys[1])
    env = {
        "SENSEOPS_MODEL_URI": f"file://{tiny_model_dir}",
        "SENSEOPS_JWT_RS256_PUBLIC_KEY_FILE": str(work / "jwt.pub"),  # as a mounted Secret would be
        "SENSEOPS_SCHEDULER_MAX_PENDING": "0",  # every decode is refused as overload
    }
    server = RuntimeServer(env, work / "runtime.log").start()
    try:
        yield server
    finally:
        server.stop()


def rs256_token(private: str, sub: str = "rs-user", scopes: tuple[str, ...] = ("stream", "transcribe")) -> str:
    return issue_token(AuthConfig(rs256_public_key="x"), private, sub, "rs-anchor", list(scopes), False, time.time())


def confused_token(public: str) -> str:
    """HS256 signed with the server's public key as the HMAC secret (the classic confusion attack)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": "x", "scopes": ["stream"], "aud": "senseops-runtime", "iss": "senseops", "exp": now + 600}
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest())}"


def test_overloaded_stream_closes_1013(overloaded_server: RuntimeServer, rsa_keys: tuple[str, str]) -> None:
    pcm = utterance_pcm(ENGLISH)
    outcome = stream(overloaded_server.ws, pcm, rs256_token(rsa_keys[0]), realtime=False)
    assert outcome.close_code == 1013 and "server overloaded" in outcome.close_reason
    assert outcome.finals == []
    # The speech segment that could not be decoded is given back; only the silence around it stays metered.
    admin = rs256_token(rsa_keys[0], sub="rs-admin", scopes=("admin",))
    usage = httpx.get(f"{overloaded_server.http}/api/usage", headers={"Authorization": f"Bearer {admin}"}).json()
    metered = sum(float(u["audio_seconds"]) for u in usage["usage"] if u["subject"] == "rs-user")
    assert 0 < metered < len(pcm) / 32_000 - 0.5, metered


def test_overloaded_upload_is_503_with_retry_after(overloaded_server: RuntimeServer, rsa_keys: tuple[str, str]) -> None:
    reply = httpx.post(
        f"{overloaded_server.http}/api/transcribe",
        files={"file": ("s.wav", sentence_wav(ENGLISH), "audio/wav")},
        headers={"Authorization": f"Bearer {rs256_token(rsa_keys[0])}"},
        timeout=60,
    )
    assert reply.status_code == 503 and "overloaded" in reply.json()["detail"]
    assert reply.headers["retry-after"] == "1"


def test_overloaded_upload_is_not_charged_to_the_budget(
    overloaded_server: RuntimeServer, rsa_keys: tuple[str, str]
) -> None:
    reply = httpx.post(
        f"{overloaded_server.http}/api/transcribe",
        files={"file": ("s.wav", sentence_wav(ENGLISH), "audio/wav")},
        headers={"Authorization": f"Bearer {rs256_token(rsa_keys[0], sub='rs-refund')}"},
        timeout=60,
    )
    assert reply.status_code == 503
    admin = rs256_token(rsa_keys[0], sub="rs-admin", scopes=("admin",))
    usage = httpx.get(f"{overloaded_server.http}/api/usage", headers={"Authorization": f"Bearer {admin}"}).json()
    assert [u for u in usage["usage"] if u["subject"] == "rs-refund"] == []


@pytest.mark.parametrize("response_format", ["json", "srt"])
def test_overloaded_openai_upload_is_not_charged_to_the_budget(
    overloaded_server: RuntimeServer, rsa_keys: tuple[str, str], response_format: str
) -> None:
    subject = f"rs-refund-openai-{response_format}"
    reply = httpx.post(
        f"{overloaded_server.http}/v1/audio/transcriptions",
        files={"file": ("s.wav", sentence_wav(ENGLISH), "audio/wav")},
        data={"model": "sensevoice-small", "response_format": response_format},
        headers={"Authorization": f"Bearer {rs256_token(rsa_keys[0], sub=subject)}"},
        timeout=60,
    )
    assert reply.status_code == 503, reply.text
    admin = rs256_token(rsa_keys[0], sub="rs-admin", scopes=("admin",))
    usage = httpx.get(f"{overloaded_server.http}/api/usage", headers={"Authorization": f"Bearer {admin}"}).json()
    assert [u for u in usage["usage"] if u["subject"] == subject] == []


def test_algorithm_confusion_refused_over_the_wire(overloaded_server: RuntimeServer, rsa_keys: tuple[str, str]) -> None:
    outcome = stream(overloaded_server.ws, utterance_pcm(ENGLISH), confused_token(rsa_keys[1]), realtime=False)
    assert outcome.close_code == 1008 and "'HS256' not accepted" in outcome.close_reason
    assert httpx.get(f"{overloaded_server.http}/readyz").status_code == 200
