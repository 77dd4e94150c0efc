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
from senseops_operator.observe import ArtifactLimits, check_artifact, check_image

PLURAL = "asrmodels"


async def _bounded(memo: kopf.Memo, fn: Any, *args: Any) -> Any:
    """Run one blocking check in a thread, at most ``artifact_check_concurrency`` at once, within the timeout.

    A check that times out is reported as such; its thread finishes in the background (Python threads
    cannot be cancelled) but no longer holds a slot.
    """
    async with memo.artifact_checks:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout=memo.config.artifact_check_timeout_s)


async def _observe(spec: kopf.Spec, meta: kopf.Meta, memo: kopf.Memo) -> decide.ASRModelObservation:
    cfg = memo.config
    limits = ArtifactLimits(cfg.file_artifact_root, cfg.artifact_max_objects, cfg.artifact_max_bytes)
    try:
        check = await _bounded(memo, check_artifact, dict(spec), limits, memo.registry)
    except TimeoutError:
        check = decide.ArtifactCheck(False, "StoreUnavailable",
                                     f"artifact check timed out after {cfg.artifact_check_timeout_s:g}s")
    ARTIFACT_CHECKS.labels(check.reason).inc()
    image = None
    if spec.get("image"):
        try:
            image = await _bounded(memo, check_image, dict(spec), memo.registry)
        except TimeoutError:
            image = decide.ImageCheck(False, "RegistryUnavailable",
                                      f"image check timed out after {cfg.artifact_check_timeout_s:g}s")
    return decide.ASRModelObservation(generation=int(meta.get("generation") or 0), check=check, image=image)


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
    """Verify again when the decided time (``status.nextCheckAt``) has come: soon after a transient
    failure, every few minutes when verified, after a long back-off when the spec is wrong."""
    if decide.needs_recheck(dict(status), datetime.now(UTC)):
        await reconcile(spec=spec, status=status, meta=meta, body=body, patch=patch, memo=memo)
