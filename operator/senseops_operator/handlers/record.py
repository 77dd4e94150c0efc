"""Acting on a Decision: write status through kopf's patch, post Events, count the reconcile."""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import kopf

from senseops_operator.decide.common import Decision
from senseops_operator.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, RECONCILES


def record(decision: Decision, body: kopf.Body, patch: kopf.Patch) -> None:
    """Write the decided status (whole fields, written once) and post the decided Events."""
    status: MutableMapping[str, Any] = patch.status
    for key, value in decision.status.items():
        status[key] = value
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


@contextmanager
def measured(kind: str) -> Iterator[None]:
    """Count and time one reconcile; kopf's own retry handles the exception after we count it."""
    started = time.perf_counter()
    try:
        yield
    except kopf.TemporaryError:
        RECONCILES.labels(kind, "requeued").inc()
        raise
    except Exception as exc:
        RECONCILES.labels(kind, "error").inc()
        RECONCILE_ERRORS.labels(kind, type(exc).__name__).inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
