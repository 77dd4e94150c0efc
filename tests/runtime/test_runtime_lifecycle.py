"""Readiness on a failed model load, throttling of faster-than-real-time clients, usage metering."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.runtime.conftest import REALTIME_BURST_S, make_token
from tests.runtime.helpers import ENGLISH, stream, utterance_pcm
from tests.runtime.server import TEST_SECRET, RuntimeServer, wait_until


def test_failed_model_load_is_reported_by_readyz(tmp_path: Path) -> None:
    env = {
        "SENSEOPS_MODEL_URI": f"file://{tmp_path}/no-such-model/",
        "SENSEOPS_JWT_HS256_SECRET": TEST_SECRET,
    }
    server = RuntimeServer(env, tmp_path / "runtime.log").start(ready_timeout_s=120, wait_path="/healthz")
    try:

        def failed() -> bool:
            return "failed" in httpx.get(f"{server.http}/readyz").json()["reason"]

        assert wait_until(failed, 120), server.log_tail()
        ready = httpx.get(f"{server.http}/readyz")
        assert ready.status_code == 503
        assert "model load failed" in ready.json()["reason"] and "no-such-model" in ready.json()["reason"]
        assert httpx.get(f"{server.http}/api/health").status_code == 503
        assert httpx.get(f"{server.http}/healthz").status_code == 200  # alive, so the reason stays visible
        reply = httpx.post(
            f"{server.http}/api/transcribe",
            json={"file_path": "s3://bucket/a.wav"},
            headers={"Authorization": f"Bearer {make_token()}"},
        )
        assert reply.status_code == 503 and "model not ready" in reply.json()["detail"]
    finally:
        server.stop()


def test_waiting_for_readiness_stops_at_a_failed_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The harness gives up as soon as /readyz names a failed load, with the reason, instead of polling until
    # its timeout (a benchmark on a machine without silero-vad once waited 7 minutes for nothing).
    env = {"SENSEOPS_MODEL_URI": f"file://{tmp_path}/no-such-model/", "SENSEOPS_JWT_HS256_SECRET": TEST_SECRET}
    server = RuntimeServer(env, tmp_path / "runtime.log")
    processes: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        processes.append(real_popen(*args, **kwargs))
        return processes[-1]

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    with pytest.raises(RuntimeError, match="will not turn ready: model load failed") as failure:
        server.start(ready_timeout_s=600)
    assert "no-such-model" in str(failure.value)
    assert len(processes) == 1 and processes[0].poll() is not None  # the runtime was stopped, not left running


def test_client_faster_than_real_time_is_throttled(runtime_server: RuntimeServer) -> None:
    pcm = b"\x00\x00" * 16_000 * 6  # 6 s of silence, sent as fast as the socket allows
    started = time.monotonic()
    outcome = stream(runtime_server.ws, pcm, make_token(), realtime=False)
    elapsed = time.monotonic() - started
    assert outcome.close_code == 1000
    # The server reads no further than REALTIME_BURST_S ahead of the wall clock.
    assert elapsed >= 6 - REALTIME_BURST_S - 0.3, elapsed


def test_usage_is_metered_per_subject_and_anchor(runtime_server: RuntimeServer) -> None:
    sub = "t-usage-" + str(int(time.time()))
    outcome = stream(runtime_server.ws, utterance_pcm(ENGLISH), make_token(sub=sub, anchor="anchor-usage"))
    assert outcome.close_code == 1000
    admin = make_token(scopes=["admin"])
    usage = httpx.get(f"{runtime_server.http}/api/usage", headers={"Authorization": f"Bearer {admin}"}).json()
    (entry,) = [u for u in usage["usage"] if u["subject"] == sub]
    assert entry["anchor_id"] == "anchor-usage"
    assert abs(entry["audio_seconds"] - len(utterance_pcm(ENGLISH)) / 32_000) < 0.2
    refused = httpx.get(f"{runtime_server.http}/api/usage", headers={"Authorization": f"Bearer {make_token()}"})
    assert refused.status_code == 403 and "'admin' scope" in refused.json()["detail"]
