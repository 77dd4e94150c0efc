"""Table tests for the ASRModel decision (pure: no cluster, no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from senseops_operator.constants import REVERIFY_ARTIFACT_SECONDS
from senseops_operator.decide.asrmodel import (
    PERMANENT_RECHECK_BASE_SECONDS,
    TRANSIENT_RETRY_SECONDS,
    ArtifactCheck,
    ASRModelObservation,
    decide,
    needs_recheck,
)
from senseops_operator.decide.common import find_condition

NOW = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
SPEC = {"version": "v1", "artifact": {"uri": "s3://models/m/v1/", "sha256": "a" * 64, "format": "funasr"}}
OK = ArtifactCheck(True, "Verified", "2 objects, 10 bytes", 10, "a" * 64)


@pytest.mark.parametrize(
    ("name", "check", "phase", "verified", "reason", "ready", "requeue", "event_types"),
    [
        ("not checked yet", None, "Verifying", "Unknown", "Pending", "False", TRANSIENT_RETRY_SECONDS, []),
        ("verified", OK, "Ready", "True", "Verified", "True", REVERIFY_ARTIFACT_SECONDS, ["Normal", "Normal"]),
        ("digest mismatch is permanent", ArtifactCheck(False, "DigestMismatch", "sha256 differs"),
         "Failed", "False", "DigestMismatch", "False", PERMANENT_RECHECK_BASE_SECONDS, ["Warning", "Warning"]),
        ("size mismatch is permanent", ArtifactCheck(False, "SizeMismatch", "9 != 10", 9),
         "Failed", "False", "SizeMismatch", "False", PERMANENT_RECHECK_BASE_SECONDS, ["Warning", "Warning"]),
        ("missing object is retried soon", ArtifactCheck(False, "NotFound", "no object"),
         "Verifying", "False", "NotFound", "False", TRANSIENT_RETRY_SECONDS, ["Warning", "Warning"]),
        ("store outage is retried soon", ArtifactCheck(False, "StoreUnavailable", "timeout"),
         "Verifying", "False", "StoreUnavailable", "False", TRANSIENT_RETRY_SECONDS, ["Warning", "Warning"]),
        ("access denied is retried soon", ArtifactCheck(False, "AccessDenied", "403"),
         "Verifying", "False", "AccessDenied", "False", TRANSIENT_RETRY_SECONDS, ["Warning", "Warning"]),
    ],
)
def test_decide_from_a_fresh_object(name: str, check: ArtifactCheck | None, phase: str, verified: str,
                                    reason: str, ready: str, requeue: float, event_types: list[str]) -> None:
    decision = decide(SPEC, {}, ASRModelObservation(generation=3, check=check), NOW)
    status = decision.status
    assert status["phase"] == phase
    assert status["observedGeneration"] == 3
    av = find_condition(status["conditions"], "ArtifactVerified")
    assert av is not None and av["status"] == verified and av["reason"] == reason
    rd = find_condition(status["conditions"], "Ready")
    assert rd is not None and rd["status"] == ready
    assert decision.requeue_after == requeue
    assert [e.type for e in decision.events] == event_types


def test_verified_status_records_size_digest_and_time() -> None:
    status = decide(SPEC, {}, ASRModelObservation(1, OK), NOW).status
    assert status["artifact"] == {"verified": True, "sizeBytes": 10, "sha256": "a" * 64,
                                  "checkedAt": "2026-11-24T08:00:00Z"}


def test_no_events_when_nothing_changed() -> None:
    first = decide(SPEC, {}, ASRModelObservation(1, OK), NOW)
    again = decide(SPEC, first.status, ASRModelObservation(1, OK), NOW + timedelta(minutes=10))
    assert again.events == ()
    av = find_condition(again.status["conditions"], "ArtifactVerified")
    assert av is not None and av["lastTransitionTime"] == "2026-11-24T08:00:00Z"


def test_recovery_after_outage_emits_normal_event() -> None:
    down = decide(SPEC, {}, ASRModelObservation(1, ArtifactCheck(False, "StoreUnavailable", "x")), NOW)
    up = decide(SPEC, down.status, ASRModelObservation(1, OK), NOW + timedelta(seconds=30))
    assert up.status["phase"] == "Ready"
    assert {(e.type, e.reason) for e in up.events} == {("Normal", "Verified"), ("Normal", "ArtifactVerified")}


@pytest.mark.parametrize(
    ("name", "status", "age_s", "expected"),
    [
        ("never checked", {}, 0, True),
        ("not ready", {"phase": "Verifying"}, 0, True),
        ("ready, fresh", {"phase": "Ready"}, REVERIFY_ARTIFACT_SECONDS - 1, False),
        ("ready, stale", {"phase": "Ready"}, REVERIFY_ARTIFACT_SECONDS, True),
    ],
)
def test_needs_recheck(name: str, status: dict[str, object], age_s: int, expected: bool) -> None:
    if status.get("phase") == "Ready":
        status = {**status, "artifact": {"checkedAt": "2026-11-24T08:00:00Z"}}
    assert needs_recheck(status, NOW + timedelta(seconds=age_s)) is expected
