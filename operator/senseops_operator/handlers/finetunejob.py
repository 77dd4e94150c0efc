"""FineTuneJob handlers (skeleton): accept and resolve the base model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf

from senseops_operator import constants as c
from senseops_operator.decide import finetunejob as decide
from senseops_operator.handlers.record import measured, record
from senseops_operator.observe import model_phases

PLURAL = "finetunejobs"


@kopf.on.resume(c.GROUP, c.VERSION, PLURAL)
@kopf.on.create(c.GROUP, c.VERSION, PLURAL)
@kopf.on.update(c.GROUP, c.VERSION, PLURAL, field="spec")
async def reconcile(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, namespace: str, body: kopf.Body,
    patch: kopf.Patch, memo: kopf.Memo, **_: Any,
) -> None:
    with measured("FineTuneJob"):
        phases = await asyncio.to_thread(model_phases, memo.custom_api, namespace, [spec["baseModel"]["name"]])
        observation = decide.FineTuneJobObservation(generation=int(meta.get("generation") or 0), model_phases=phases)
        record(decide.decide(dict(spec), dict(status), observation, datetime.now(UTC)), body, patch)


# A separate function (kopf keys progress by handler id): re-resolve the referenced models periodically,
# since an ASRModel becoming Ready does not change this object.
@kopf.timer(c.GROUP, c.VERSION, PLURAL, interval=decide.RECHECK_SECONDS, initial_delay=decide.RECHECK_SECONDS)
async def recheck(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, namespace: str, body: kopf.Body,
    patch: kopf.Patch, memo: kopf.Memo, **_: Any,
) -> None:
    await reconcile(spec=spec, status=status, meta=meta, namespace=namespace, body=body, patch=patch, memo=memo)
