"""What the routers share: settings, the engine and its scheduler, VAD, auth, quotas, metrics, recorder.

Built once per app in the lifespan and reached by routers through typed dependencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, WebSocket

from senseops_runtime.auth import AuthConfig
from senseops_runtime.drain import DrainState, check_drain_settings
from senseops_runtime.engine.base import Engine
from senseops_runtime.metrics import RuntimeMetrics
from senseops_runtime.quotas import QuotaBackend, QuotaLedger, QuotaPolicy
from senseops_runtime.recording import SpoolRecorder
from senseops_runtime.scheduler import DecodeScheduler
from senseops_runtime.settings import RuntimeSettings
from senseops_runtime.streaming.vad import SileroVad


@dataclass
class Readiness:
    """Model load progress for ``/readyz``."""

    ready: bool = False
    reason: str = "model not loaded yet"
    load_started: float = field(default_factory=time.time)


@dataclass
class Services:
    """Everything a request handler may need."""

    settings: RuntimeSettings
    metrics: RuntimeMetrics
    ledger: QuotaBackend
    auth: AuthConfig | None  # None only when auth is disabled (development)
    readiness: Readiness = field(default_factory=Readiness)
    drain: DrainState = field(default_factory=DrainState)
    engine: Engine | None = None
    scheduler: DecodeScheduler | None = None
    vad: SileroVad | None = None
    recorder: SpoolRecorder | None = None

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> Services:
        """Build the parts that need no model."""
        check_drain_settings(settings.drain_timeout_s, settings.drain_segment_grace_s)
        auth = None
        if not settings.auth_disabled:
            auth = AuthConfig(
                hs256_secret=settings.jwt_hs256_secret,
                rs256_public_key=settings.jwt_rs256_public_key,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
            _ = auth.algorithm  # fail at start, with a clear message, when no key is configured
        policy = QuotaPolicy(settings.max_streams_per_subject, settings.audio_minutes_per_day * 60)
        ledger: QuotaBackend = QuotaLedger(policy)
        if settings.quota_redis_url:
            from senseops_runtime.quota_redis import RedisQuotaLedger

            if settings.quota_failure_policy not in ("open", "closed"):
                raise ValueError(
                    f"SENSEOPS_QUOTA_FAILURE_POLICY={settings.quota_failure_policy!r}; use 'open' or 'closed'"
                )
            ledger = RedisQuotaLedger(
                policy,
                settings.quota_redis_url,
                "open" if settings.quota_failure_policy == "open" else "closed",
            )
        return cls(settings=settings, metrics=RuntimeMetrics(), ledger=ledger, auth=auth)


def _services_from_request(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _services_from_websocket(websocket: WebSocket) -> Services:
    return websocket.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(_services_from_request)]
WsServicesDep = Annotated[Services, Depends(_services_from_websocket)]
