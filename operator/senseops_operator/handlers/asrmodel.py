"""ASRModel handlers: verify the artifact in its store and record phase/conditions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf

from senseops_operator import constants as c
from senseops_operator.decide import asrmodel as decide
from senseops_operator.handlers.record import measured, record
from senseops_operator.metrics import ARTIFACT_CHECKS
from senseops_operator.observe import check_artifact

PLURAL = "asrmodels"


async def _observe(spec: kopf.Spec, meta: kopf.Meta, memo: kopf.Memo) -> decide.ASRModelObservation:
    try:
        check = await asyncio.wait_for(
            asyncio.to_thread(check_artifact, dict(spec)), timeout=memo.config.artifact_check_timeout_s
        )
    except TimeoutError:
        check = decide.ArtifactCheck(False, "StoreUnavailable", "artifact check timed out")
    ARTIFACT_CHECKS.labels(check.reason).inc()
    return decide.ASRModelObservation(generation=int(meta.get("generation") or 0), check=check)


@kopf.on.resume(c.GROUP, c.VERSION, PLURAL)
@kopf.on.create(c.GROUP, c.VERSION, PLURAL)
@kopf.on.update(c.GROUP, c.VERSION, PLURAL, field="spec")
async def reconcile(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, body: kopf.Body, patch: kopf.Patch,
    memo: kopf.Memo, **_: Any,
) -> None:
    with measured("ASRModel"):
        observation = await _observe(spec, meta, memo)
        record(decide.decide(dict(spec), dict(status), observation, datetime.now(UTC)), body, patch)


@kopf.timer(c.GROUP, c.VERSION, PLURAL, interval=decide.TRANSIENT_RETRY_SECONDS,
            initial_delay=decide.TRANSIENT_RETRY_SECONDS)
async def recheck(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, body: kopf.Body, patch: kopf.Patch,
    memo: kopf.Memo, **_: Any,
) -> None:
    """Re-verify failed or pending artifacts soon, verified ones every few minutes."""
    if decide.needs_recheck(dict(status), datetime.now(UTC)):
        await reconcile(spec=spec, status=status, meta=meta, body=body, patch=patch, memo=memo)
