"""Progress reporting: one JSON object per line on stdout, and optionally the FineTuneJob's status.

The operator (and ``kubectl logs``) read the JSON lines; inside a cluster, when ``FINETUNEJOB_NAME`` and
``FINETUNEJOB_NAMESPACE`` are set and in-cluster credentials exist, the same progress is also patched into
``status.progress`` of ``finetunejobs.senseops.dev/v1alpha1`` (rate-limited, best effort: a failed patch
is logged and training goes on).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from senseops_common.progress import PROGRESS_ENV, choose_mode

log = logging.getLogger("senseops.trainer")

GROUP, VERSION, PLURAL = "senseops.dev", "v1alpha1", "finetunejobs"
STATUS_PATCH_MIN_INTERVAL_S = 10.0
_SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def estimate_eta_s(done: float, total: float, elapsed_s: float) -> float | None:
    """Seconds left at the average rate so far; ``None`` before there is a rate or a known total."""
    if done <= 0 or total <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, (total - done) * elapsed_s / done)


def status_progress(fields: dict[str, Any], now: float) -> dict[str, Any]:
    """Pure: the FineTuneJob ``status.progress`` object (CRD field names) for one training event, or ``{}``
    for events that carry no training progress. ``step`` is the global step, ``totalSteps`` the planned
    total of the run, ``skippedBatches`` the batches the loss guard skipped so far."""
    if "step" not in fields or fields.get("total_step") is None:
        return {}
    out: dict[str, Any] = {"stage": "train", "epoch": fields.get("epoch"), "step": fields["total_step"],
                           "loss": fields.get("loss")}
    if fields.get("steps_per_epoch") and fields.get("max_epoch"):
        out["totalSteps"] = int(fields["steps_per_epoch"]) * int(fields["max_epoch"])
    if fields.get("eta_s") is not None:
        out["etaSeconds"] = round(float(fields["eta_s"]))
    if fields.get("skipped_batches") is not None:
        out["skippedBatches"] = int(fields["skipped_batches"])
    out["updatedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {k: v for k, v in out.items() if v is not None}


class StatusSink(Protocol):
    """Where progress goes besides the log (the FineTuneJob status in a cluster)."""

    def publish(self, progress: dict[str, Any], force: bool = False) -> None:
        """Record the latest progress (implementations may rate-limit unless ``force``)."""
        ...


class NullStatusSink:
    """Used outside a cluster: progress goes to the JSON log only."""

    def publish(self, progress: dict[str, Any], force: bool = False) -> None:
        """Do nothing."""


class FineTuneJobStatusSink:
    """Patches ``status.progress`` of one FineTuneJob through the Kubernetes API (merge patch)."""

    def __init__(self, name: str, namespace: str, api: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.namespace, self.api, self.clock = name, namespace, api, clock
        self._last = float("-inf")

    def publish(self, progress: dict[str, Any], force: bool = False) -> None:
        """Patch the status unless the last patch is younger than the minimum interval."""
        now = self.clock()
        if not force and now - self._last < STATUS_PATCH_MIN_INTERVAL_S:
            return
        self._last = now
        body = {"status": {"progress": progress}}
        try:
            self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, self.name, body
            )
        except Exception as exc:  # progress is advisory; never fail training over it
            log.warning("could not patch FineTuneJob %s/%s status: %s", self.namespace, self.name, exc)


def status_sink_from_env(env: dict[str, str] | None = None) -> StatusSink:
    """A FineTuneJob sink when the job's name/namespace are in the environment inside a cluster."""
    env = dict(os.environ) if env is None else env
    name, namespace = env.get("FINETUNEJOB_NAME"), env.get("FINETUNEJOB_NAMESPACE")
    if not name or not namespace or not env.get("KUBERNETES_SERVICE_HOST"):
        return NullStatusSink()
    if not os.path.exists(_SERVICE_ACCOUNT_TOKEN):
        return NullStatusSink()
    try:
        from kubernetes import client, config

        config.load_incluster_config()
        return FineTuneJobStatusSink(name, namespace, client.CustomObjectsApi())
    except Exception as exc:  # without credentials we still train, just without status
        log.warning("FineTuneJob status updates disabled: %s", exc)
        return NullStatusSink()


# Events that a progress bar shows on a terminal (senseops_common.progress): their lines are left out there.
BAR_EVENTS = frozenset({"step"})


def writes_line(event: str, on_terminal: bool) -> bool:
    """Pure: whether an event gets a JSON line (always, except the bar's events on a terminal)."""
    return not (on_terminal and event in BAR_EVENTS)


class ProgressLog:
    """Writes progress events as JSON lines and forwards them to a :class:`StatusSink`.

    Off a terminal (logs, pipes, Kubernetes) every event is a line. On a terminal the training steps are
    drawn as a bar instead, and other lines first clear the bar's line; the status sink gets every event
    either way.
    """

    def __init__(self, out: TextIO | None = None, sink: StatusSink | None = None) -> None:
        self.out = out or sys.stdout
        self.sink = sink or NullStatusSink()
        # Only when the bar is really drawn (stderr a terminal too, SENSEOPS_PROGRESS not json/off).
        self.on_terminal = _isatty(self.out) and choose_mode(
            _isatty(sys.stderr), os.environ.get(PROGRESS_ENV), os.environ.get("TERM"), bar_only=True
        ) == "bar"

    def emit(self, stage: str, event: str, force_status: bool = False, **fields: Any) -> dict[str, Any]:
        """Write one line ``{"ts", "stage", "event", **fields}``; training steps also go to the status sink."""
        now = time.time()
        line = {"ts": round(now, 3), "stage": stage, "event": event, **fields}
        if writes_line(event, self.on_terminal):
            clear = "\r\x1b[K" if self.on_terminal else ""  # start at column 0 even if a bar is drawn there
            self.out.write(clear + json.dumps(line, ensure_ascii=False, default=str) + "\n")
            self.out.flush()
        progress = status_progress(fields, now)
        if progress:
            self.sink.publish(progress, force=force_status)
        elif event == "start":  # the operator follows the stages (PreparingData, Training, ...) from this
            self.sink.publish({"stage": stage}, force=True)
        return line


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
