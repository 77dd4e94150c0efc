"""HTTP API against a real uvicorn server: health, upload, stored URI, OpenAI client, metrics."""

from __future__ import annotations

import httpx
import openai
import pytest

from senseops_common.storage import open_store
from senseops_common.storage.config import StoreConfig
from tests.runtime.conftest import AUDIO_PREFIX, make_token
from tests.runtime.helpers import ENGLISH, MANDARIN, sentence_wav
from tests.runtime.server import RuntimeServer
from tests.servers.minio import MinioServer


def test_health_endpoints(runtime_server: RuntimeServer) -> None:
    assert httpx.get(f"{runtime_server.http}/healthz").json() == {"ok": True}
    ready = httpx.get(f"{runtime_server.http}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["model"]["backend"] == "torch"
    assert httpx.get(f"{runtime_server.http}/api/health").json()["ok"] is True


@pytest.mark.parametrize("sentence", [ENGLISH, MANDARIN], ids=["en", "zh"])
def test_upload_transcribes_known_sentence(runtime_server: RuntimeServer, sentence: object) -> None:
    reply = httpx.post(
        f"{runtime_server.http}/api/transcribe",
        files={"file": ("speech.wav", sentence_wav(sentence), "audio/wav")},  # type: ignore[arg-type]
        data={"itn": "false"},
        headers={"Authorization": f"Bearer {make_token()}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["text"] == sentence.text  # type: ignore[attr-defined]
    assert body["lang"] == sentence.lang  # type: ignore[attr-defined]
    assert 0.0 < body["confidence"] <= 1.0
    assert body["no_speech"] is False


def test_stored_uri_transcription(
    runtime_server: RuntimeServer, minio_server: MinioServer, runtime_bucket: str
) -> None:
    store = open_store(f"s3://{runtime_bucket}/", StoreConfig.from_env(minio_server.store_env()))
    store.put(f"{AUDIO_PREFIX}hello.wav", sentence_wav(ENGLISH))
    reply = httpx.post(
        f"{runtime_server.http}/api/transcribe",
        json={"file_path": f"s3://{runtime_bucket}/{AUDIO_PREFIX}hello.wav", "itn": False},
        headers={"Authorization": f"Bearer {make_token()}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["text"] == ENGLISH.text


def test_openai_client_unchanged(runtime_server: RuntimeServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{runtime_server.http}/v1", api_key=make_token(), max_retries=0)
    path = tmp_path / "speech.wav"
    path.write_bytes(sentence_wav(ENGLISH))
    with path.open("rb") as handle:
        result = client.audio.transcriptions.create(model="sensevoice-small", file=handle)
    assert result.text == ENGLISH.text_itn  # ITN is on by default, as OpenAI clients expect punctuation
    with path.open("rb") as handle:
        text = client.audio.transcriptions.create(model="sensevoice-small", file=handle, response_format="text")
    assert str(text).strip() == ENGLISH.text_itn
    with path.open("rb") as handle:
        verbose = client.audio.transcriptions.create(
            model="sensevoice-small", file=handle, response_format="verbose_json", language="en"
        )
    assert verbose.text == ENGLISH.text_itn
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(len(ENGLISH.synthesize()) / 16_000, abs=0.01)
    with pytest.raises(openai.BadRequestError, match="response_format"), path.open("rb") as handle:
        client.audio.transcriptions.create(model="sensevoice-small", file=handle, response_format="diarized_json")
    with pytest.raises(openai.AuthenticationError):
        bad = openai.OpenAI(base_url=f"{runtime_server.http}/v1", api_key="sk-not-a-jwt", max_retries=0)
        with path.open("rb") as handle:
            bad.audio.transcriptions.create(model="sensevoice-small", file=handle)


def test_metrics_exposed_with_model_labels(runtime_server: RuntimeServer) -> None:
    httpx.post(
        f"{runtime_server.http}/api/transcribe",
        files={"file": ("speech.wav", sentence_wav(ENGLISH), "audio/wav")},
        headers={"Authorization": f"Bearer {make_token()}"},
        timeout=60,
    ).raise_for_status()
    text = httpx.get(f"{runtime_server.http}/metrics").text
    ready = httpx.get(f"{runtime_server.http}/readyz").json()["model"]
    labels = f'model="{ready["name"]}",version="{ready["version"]}"'
    for family in (
        "senseops_http_requests_total",
        "senseops_active_streams",
        "senseops_decode_queue_depth",
        "senseops_decode_busy_seconds_total",
        "senseops_audio_seconds_total",
        "senseops_decode_seconds_bucket",
        "senseops_partial_latency_seconds_bucket",
        "senseops_final_latency_seconds_bucket",
        "senseops_rtf_bucket",
        "senseops_model_load_seconds",
        "senseops_model_info",
    ):
        assert family in text, family
    assert f"senseops_model_load_seconds{{{labels}}}" in text
    assert f'senseops_decode_seconds_count{{kind="upload",{labels}}}' in text
    assert 'route="/api/transcribe"' in text
