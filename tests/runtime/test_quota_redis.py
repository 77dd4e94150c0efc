"""The shared quota backend on a real redis-server: two ledgers (two replicas) share one quota; keys
expire; an unreachable Redis keeps the runtime up, counted in a metric and a log line, per policy."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from senseops_runtime.quota_redis import RedisQuotaLedger
from senseops_runtime.quotas import Admitted, QuotaPolicy, QuotaRefusal, QuotaUnavailable
from senseops_runtime.services import Services
from senseops_runtime.settings import RuntimeSettings
from tests.runtime.redis_server import RedisServer

POLICY = QuotaPolicy(max_streams_per_subject=2, audio_seconds_per_day=60.0)
DAY = "2026-03-01"
NOW = 1_772_366_400.0  # 2026-03-01T12:00:00Z


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


def _replicas(url: str, n: int = 2, policy: str = "open") -> list[RedisQuotaLedger]:
    prefix = "t-" + secrets.token_hex(4)  # each test its own keys
    return [
        RedisQuotaLedger(POLICY, url, policy, prefix=prefix, clock=lambda: NOW)  # type: ignore[arg-type]
        for _ in range(n)
    ]


def _errors(policy: str) -> float:
    return REGISTRY.get_sample_value("senseops_quota_backend_errors_total", {"policy": policy}) or 0.0


def test_two_replicas_share_stream_slots_and_the_audio_budget(redis_server: RedisServer) -> None:
    one, two = _replicas(redis_server.url)
    first = one.open_stream("alice", DAY)
    second = two.open_stream("alice", DAY)
    assert isinstance(first, Admitted) and isinstance(second, Admitted)
    third = one.open_stream("alice", DAY)
    assert isinstance(third, QuotaRefusal) and "concurrent stream limit" in third.reason
    two.close_stream("alice", second.lease)
    assert isinstance(one.open_stream("alice", DAY), Admitted)  # the slot freed on the other replica
    assert one.charge("alice", "a1", 40, DAY) and two.charge("alice", "a2", 20, DAY)
    assert not one.charge("alice", "a1", 0.5, DAY) and not two.has_budget("alice", DAY)
    two.refund("alice", "a2", 20, DAY)
    assert one.has_budget("alice", DAY)
    assert [(r["day"], r["subject"], r["anchor_id"], r["audio_seconds"]) for r in two.metering()] == [
        (DAY, "alice", "a1", 40.0)
    ]
    assert isinstance(one.open_stream("bob", DAY), Admitted)  # other subjects unaffected


def test_charges_are_atomic_under_concurrency(redis_server: RedisServer) -> None:
    ledgers = _replicas(redis_server.url, n=4)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: ledgers[n % 4].charge("carol", "a", 1.0, DAY), range(200)))
    assert results.count(True) == 60  # exactly the budget, never more, across all replicas
    assert not ledgers[0].has_budget("carol", DAY)


def test_keys_expire(redis_server: RedisServer) -> None:
    (ledger,) = _replicas(redis_server.url, n=1)
    assert isinstance(ledger.open_stream("dave", DAY), Admitted)
    assert ledger.charge("dave", "a", 5, DAY)
    client = redis.Redis.from_url(redis_server.url)
    for key in client.keys(f"{ledger.prefix}:*"):
        assert 0 < client.ttl(key) <= 2 * 86_400, key  # nothing lives forever


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_unreachable_redis_keeps_the_runtime_up_with_the_configured_policy(
    policy: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    (ledger,) = _replicas(server.url, n=1, policy=policy)
    assert ledger.charge("erin", "a", 1, DAY)
    server.stop()
    before = _errors(policy)
    with caplog.at_level(logging.ERROR, logger="senseops_runtime.quota_redis"):
        if policy == "open":
            assert isinstance(ledger.open_stream("erin", DAY), Admitted)
            assert ledger.charge("erin", "a", 100, DAY)  # admitted unmetered
        else:
            with pytest.raises(QuotaUnavailable, match="quota service unavailable"):
                ledger.open_stream("erin", DAY)
            with pytest.raises(QuotaUnavailable):
                ledger.charge("erin", "a", 1, DAY)
    assert _errors(policy) - before == 2
    assert REGISTRY.get_sample_value("senseops_quota_backend_up") == 0
    assert [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()][:1], "expected a log line"
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1  # once, not per call


def test_services_use_redis_when_configured_and_refuse_a_bad_policy(redis_server: RedisServer) -> None:
    base = {"SENSEOPS_JWT_HS256_SECRET": "0123456789abcdef0123456789abcdef"}
    services = Services.from_settings(RuntimeSettings.from_env({**base, "SENSEOPS_QUOTA_REDIS_URL": redis_server.url}))
    assert isinstance(services.ledger, RedisQuotaLedger)
    with pytest.raises(ValueError, match="'open' or 'closed'"):
        Services.from_settings(
            RuntimeSettings.from_env(
                {**base, "SENSEOPS_QUOTA_REDIS_URL": redis_server.url, "SENSEOPS_QUOTA_FAILURE_POLICY": "maybe"}
            )
        )
