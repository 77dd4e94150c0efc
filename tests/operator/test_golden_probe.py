"""The golden-set probe against real runtime processes: the trained tiny model as stable, the same model with
random weights as the worse candidate, the golden set in MinIO, tokens signed by the operator's own code."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from senseops_common.storage import StoreConfig, open_store
from senseops_operator.decide import quality_gate as qg
from senseops_operator.models.rollout import QualityGate
from senseops_operator.providers import golden
from senseops_runtime.auth import AuthConfig, Principal, verify_token
from tests.operator.golden import untrained_model_dir, upload_golden_set
from tests.runtime.server import TEST_SECRET, RuntimeServer
from tests.servers.minio import MinioServer

# ---- pure parts ---------------------------------------------------------------------------------------------


def test_minted_token_is_accepted_by_the_runtime_verifier() -> None:
    now = time.time()
    token = golden.mint_token(TEST_SECRET, now)
    principal = verify_token(token, AuthConfig(hs256_secret=TEST_SECRET), "transcribe", now)
    assert isinstance(principal, Principal), principal
    assert "transcribe" in principal.scopes and principal.subject == "senseops-operator"
    refused = verify_token(golden.mint_token("another-secret-0123456789abcdef", now),
                           AuthConfig(hs256_secret=TEST_SECRET), "transcribe", now)
    assert not isinstance(refused, Principal)
    expired = verify_token(golden.mint_token(TEST_SECRET, now - 3600), AuthConfig(hs256_secret=TEST_SECRET),
                           "transcribe", now)
    assert not isinstance(expired, Principal)


def test_token_from_env_only_with_the_secret() -> None:
    assert golden.token_from_env({}) is None
    assert golden.token_from_env({golden.PROBE_SECRET_ENV: "s" * 32}, now=0.0) == golden.mint_token("s" * 32, 0.0)


@pytest.mark.parametrize(("name", "text", "error"), [
    ("two clips", '{"key": "a.wav", "text": "你好", "language": "zh"}\n\n{"key": "b.wav", "text": "hi"}\n', None),
    ("not JSON", "{key: a.wav}\n", "line 1 is not JSON"),
    ("no text", '{"key": "a.wav"}\n', 'needs {"key"'),
    ("absolute key", '{"key": "/etc/passwd", "text": "x"}\n', "must be relative"),
    ("key escaping the prefix", '{"key": "../x.wav", "text": "x"}\n', "must be relative"),
    ("empty", "\n\n", "lists no clips"),
    ("more than maxClips", '{"key": "a.wav", "text": "x"}\n' * 3, "more than maxClips 2"),
])
def test_parse_manifest(name: str, text: str, error: str | None) -> None:
    if error is None:
        entries = golden.parse_manifest(text, max_clips=2)
        assert entries == [golden.GoldenEntry("a.wav", "你好", "zh"), golden.GoldenEntry("b.wav", "hi", "auto")]
    else:
        with pytest.raises(golden.GoldenSetError, match=error.replace("{", r"\{").replace("(", r"\(")):
            golden.parse_manifest(text, max_clips=2)


# ---- against real runtimes ----------------------------------------------------------------------------------


def _runtime(model_dir: Path, work: Path, minio: MinioServer) -> RuntimeServer:
    env = {**minio.store_env(), "SENSEOPS_MODEL_URI": f"file://{model_dir}",
           "SENSEOPS_MODEL_CACHE_DIR": str(work / "model-cache"), "SENSEOPS_BACKEND": "torch",
           "SENSEOPS_JWT_HS256_SECRET": TEST_SECRET, "SENSEOPS_THREADS": "1"}
    return RuntimeServer(env, work / "runtime.log")


@pytest.fixture(scope="module")
def two_runtimes(minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[tuple[RuntimeServer, RuntimeServer]]:
    """(trained tiny model, the same with random weights), both with HS256 auth."""
    from tests.testmodel import ensure_tiny_model

    trained = Path(ensure_tiny_model())
    work = tmp_path_factory.mktemp("probe")
    worse = untrained_model_dir(trained, work / "untrained-model")
    servers = [_runtime(trained, work / "good", minio_server), _runtime(worse, work / "worse", minio_server)]
    try:
        for s in servers:
            s.start()
        yield servers[0], servers[1]
    finally:
        for s in servers:
            s.stop()


@pytest.fixture(scope="module")
def golden_gate(minio_server: MinioServer) -> QualityGate:
    bucket = f"golden-{secrets.token_hex(3)}"
    minio_server.create_bucket(bucket)
    store = open_store(f"s3://{bucket}/", StoreConfig.from_env(minio_server.store_env()))
    upload_golden_set(store, "sets/v1/", count=4)
    return QualityGate.model_validate({"goldenSet": {"uri": f"s3://{bucket}/sets/v1/"}, "metric": "cer",
                                       "maxDegradation": 0.05, "requestTimeoutSeconds": 120})


def _env(minio: MinioServer, secret: str | None = TEST_SECRET) -> dict[str, str]:
    return {**minio.store_env(), **({golden.PROBE_SECRET_ENV: secret} if secret else {})}


@pytest.mark.model
def test_same_model_on_both_sides_passes(two_runtimes: tuple[RuntimeServer, RuntimeServer],
                                         golden_gate: QualityGate, minio_server: MinioServer) -> None:
    good, _ = two_runtimes
    result = golden.probe(golden_gate, good.http, good.http, _env(minio_server))
    assert result.error is None, result.error
    assert result.clips == 4 and result.candidate == 0.0 and result.stable == 0.0
    assert qg.judge(golden_gate, result, qg.analysis.parse_time("2026-11-29T07:00:00Z")).phase == "Successful"


@pytest.mark.model
def test_untrained_candidate_fails_with_both_numbers(two_runtimes: tuple[RuntimeServer, RuntimeServer],
                                                     golden_gate: QualityGate, minio_server: MinioServer) -> None:
    good, worse = two_runtimes
    result = golden.probe(golden_gate, worse.http, good.http, _env(minio_server))
    print(f"\nuntrained candidate CER {result.candidate} vs trained stable CER {result.stable}")
    assert result.error is None, result.error
    assert result.stable == 0.0 and result.candidate is not None and result.candidate > 0.5
    m = qg.judge(golden_gate, result, qg.analysis.parse_time("2026-11-29T07:00:00Z"))
    assert m.phase == "Failed" and f"{result.candidate:.4f}" in (m.message or "") and "0.0000" in (m.message or "")


@pytest.mark.model
@pytest.mark.parametrize(("name", "secret", "candidate", "error"), [
    ("no signing key: 401 and a hint", None, "good", "HTTP 401"),
    ("wrong signing key: 401", "wrong-secret-0123456789abcdef0123", "good", "HTTP 401"),
    ("candidate down: connection error", TEST_SECRET, "http://127.0.0.1:9", "candidate http://127.0.0.1:9"),
    ("candidate without a ready endpoint", TEST_SECRET, None, "no ready endpoint"),
])
def test_probe_errors_are_inconclusive(two_runtimes: tuple[RuntimeServer, RuntimeServer], golden_gate: QualityGate,
                                       minio_server: MinioServer, name: str, secret: str | None,
                                       candidate: str | None, error: str) -> None:
    good, _ = two_runtimes
    url = good.http if candidate == "good" else candidate
    result = golden.probe(golden_gate, url, good.http, _env(minio_server, secret))
    assert result.error is not None and error in result.error, result.error
    if secret is None:
        assert golden.PROBE_SECRET_ENV in result.error
    assert qg.judge(golden_gate, result, qg.analysis.parse_time("2026-11-29T07:00:00Z")).phase == "Inconclusive"


def test_unreadable_golden_set_is_inconclusive(minio_server: MinioServer) -> None:
    bucket = f"golden-{secrets.token_hex(3)}"
    minio_server.create_bucket(bucket)
    store = open_store(f"s3://{bucket}/", StoreConfig.from_env(minio_server.store_env()))
    gate = QualityGate.model_validate({"goldenSet": {"uri": f"s3://{bucket}/set/"}, "maxClipBytes": 1024})
    missing = golden.probe(gate, "http://127.0.0.1:9", "http://127.0.0.1:9", _env(minio_server))
    assert missing.error is not None and "cannot read the golden set" in missing.error
    store.put("set/manifest.jsonl", json.dumps({"key": "big.wav", "text": "x"}).encode())
    store.put("set/big.wav", b"\0" * 4096)
    big = golden.probe(gate, "http://127.0.0.1:9", "http://127.0.0.1:9", _env(minio_server))
    assert big.error is not None and "more than maxClipBytes 1024" in big.error
