"""WebSocket streaming against a real server: real-time espeak-ng speech in, partials then finals out,
recordings in MinIO with the right keys and checksums."""

from __future__ import annotations

import hashlib
import io
import json
import time

import httpx
import soundfile as sf

from senseops_common.layout import SegmentRecord
from senseops_common.storage import open_store
from senseops_common.storage.config import StoreConfig
from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, MANDARIN, stream, utterance_pcm
from tests.runtime.server import RuntimeServer, wait_until
from tests.servers.minio import MinioServer


def test_realtime_stream_gives_partials_then_the_known_final(runtime_server: RuntimeServer) -> None:
    pcm = utterance_pcm(ENGLISH)
    started = time.monotonic()
    outcome = stream(runtime_server.ws, pcm, make_token(), options={"language": "auto", "itn": False})
    elapsed = time.monotonic() - started
    assert outcome.close_code == 1000, outcome.close_reason
    assert elapsed >= len(pcm) / 32_000 * 0.95  # it really was streamed at real time
    assert len(outcome.finals) == 1, outcome.finals
    final_at, final = outcome.finals[0]
    assert final["final"] == ENGLISH.text
    assert final["lang"] == "en"
    assert set(final) == {"final", "segment_id", "start_ms", "end_ms", "lang", "emotion", "event", "confidence"}
    # The segment lies inside the padded clip, around the speech (0.6 s of silence before it).
    assert 300 <= final["start_ms"] <= 700 < final["end_ms"] <= len(pcm) // 32
    assert outcome.partials, "expected partial transcripts while speaking"
    assert all(at < final_at for at, _ in outcome.partials)  # partials come before their final


def test_stream_with_bearer_header_and_mandarin(runtime_server: RuntimeServer) -> None:
    outcome = stream(
        runtime_server.ws, utterance_pcm(MANDARIN), make_token(), token_in_header=True, options={"itn": False}
    )
    assert outcome.close_code == 1000, outcome.close_reason
    assert [m["final"] for _, m in outcome.finals] == [MANDARIN.text]
    assert outcome.finals[0][1]["lang"] == "zh"


def test_recordings_land_in_minio_with_keys_and_checksums(
    runtime_server: RuntimeServer, minio_server: MinioServer, runtime_bucket: str
) -> None:
    anchor = "anchor-rec-" + str(int(time.time() * 1000))
    outcome = stream(runtime_server.ws, utterance_pcm(ENGLISH), make_token(anchor=anchor, consent=True), realtime=False)
    assert outcome.close_code == 1000, outcome.close_reason
    ((_, final),) = outcome.finals
    store = open_store(f"s3://{runtime_bucket}/", StoreConfig.from_env(minio_server.store_env()))

    def landed() -> bool:
        keys = [o.key for o in store.list(f"asr/{anchor}/")]
        return bool(keys) and any(o.key.endswith(".wav") for o in store.list(f"raw/{anchor}/"))

    assert wait_until(landed, 30), "recording did not reach MinIO"
    (part,) = [o.key for o in store.list(f"asr/{anchor}/")]
    (record,) = [SegmentRecord.from_json(line) for line in store.get_bytes(part).decode().splitlines()]
    assert record.segment_id == final["segment_id"]
    assert record.text == final["final"] and record.lang == final["lang"]
    assert (record.start_ms, record.end_ms) == (final["start_ms"], final["end_ms"])
    assert record.audio_key == f"raw/{anchor}/{record.session_ts}/{final['segment_id']}.wav"
    assert part.startswith(f"asr/{anchor}/{record.session_ts}/") and part.endswith("-part-000000.jsonl")
    wav = store.get_bytes(record.audio_key)
    assert hashlib.sha256(wav).hexdigest() == record.audio_sha256 == store.stat(record.audio_key).sha256
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == 16_000
    assert len(samples) == (final["end_ms"] - final["start_ms"]) * 16
    assert record.model_name and record.model_version


def test_no_consent_means_no_recording(
    runtime_server: RuntimeServer, minio_server: MinioServer, runtime_bucket: str
) -> None:
    anchor = "anchor-norec-" + str(int(time.time() * 1000))
    outcome = stream(
        runtime_server.ws, utterance_pcm(ENGLISH), make_token(anchor=anchor, consent=False), realtime=False
    )
    assert outcome.close_code == 1000 and len(outcome.finals) == 1
    time.sleep(2)  # long enough for the spool to have uploaded anything it had
    store = open_store(f"s3://{runtime_bucket}/", StoreConfig.from_env(minio_server.store_env()))
    assert list(store.list(f"raw/{anchor}/")) == [] and list(store.list(f"asr/{anchor}/")) == []


def test_metrics_after_streaming(runtime_server: RuntimeServer) -> None:
    stream(runtime_server.ws, utterance_pcm(ENGLISH), make_token(), realtime=False)
    text = httpx.get(f"{runtime_server.http}/metrics").text
    final_count = [line for line in text.splitlines() if line.startswith("senseops_final_latency_seconds_count")]
    assert final_count and float(final_count[0].split()[-1]) >= 1
    assert 'senseops_ws_closes_total{code="1000"}' in text
    assert "senseops_active_streams 0.0" in text
    assert json.loads(httpx.get(f"{runtime_server.http}/readyz").text)["ready"]


def test_tokens_never_reach_the_server_log_and_log_lines_stay_intact(runtime_server: RuntimeServer) -> None:
    token = make_token()
    outcome = stream(runtime_server.ws, utterance_pcm(ENGLISH), token, realtime=False)
    assert outcome.close_code == 1000
    httpx.get(f"{runtime_server.http}/api/health?token={token}")
    log = runtime_server.log_path.read_text(errors="replace")
    assert token not in log and token.split(".")[2] not in log
    assert "/ws/stream?token=<redacted>" in log and "/api/health?token=<redacted>" in log
    assert "Logging error" not in log  # redaction must not break uvicorn's formatters
