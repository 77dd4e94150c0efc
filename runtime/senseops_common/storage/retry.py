"""The one retry policy: exponential backoff with jitter (tenacity), transient failures only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from senseops_common.storage.errors import Unavailable

log = logging.getLogger("senseops.storage")
T = TypeVar("T")

INITIAL_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0


def call_with_retries(action: Callable[[], T], *, max_attempts: int, deadline_s: float, what: str) -> T:
    """Run ``action``; retry it on :class:`Unavailable` with jittered exponential backoff until
    ``max_attempts`` or ``deadline_s`` is reached, then re-raise the last error. Other errors
    (NotFound, AccessDenied, ...) are not transient and propagate at once."""
    retrying = Retrying(
        retry=retry_if_exception_type(Unavailable),
        wait=wait_exponential_jitter(multiplier=INITIAL_BACKOFF_S, max=MAX_BACKOFF_S),
        stop=stop_after_attempt(max_attempts) | stop_after_delay(deadline_s),
        before_sleep=before_sleep_log(log, logging.INFO),
        reraise=True,
    )
    return retrying(action)
