"""ASRModel decisions: verification state → phase, conditions, events, next check.

Conditions:
- ArtifactVerified: Unknown until the store was asked; True when size and sha256 match; False with the
  reason (NotFound, DigestMismatch, SizeMismatch, AccessDenied, StoreUnavailable, InvalidURI, …).
- Ready: True when the artifact is verified (later issues add image and load checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from senseops_operator.constants import REVERIFY_ARTIFACT_SECONDS
from senseops_operator.decide.common import Decision, condition, condition_events, merge_conditions, timestamp

# Reasons after which asking the store again soon will not help: the spec (immutable) is wrong or the
# object was replaced. They still get rechecked, just rarely.
PERMANENT_FAILURES = frozenset({"DigestMismatch", "SizeMismatch", "InvalidURI", "UnsupportedScheme"})
TRANSIENT_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class ArtifactCheck:
    """What the store said about the artifact (the handler fills it from the storage module)."""

    ok: bool
    reason: str
    message: str
    size_bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ASRModelObservation:
    generation: int
    check: ArtifactCheck | None  # None: not checked (e.g. the check is still running or was skipped)


def needs_recheck(status: dict[str, Any], now: datetime) -> bool:
    """Should the periodic timer verify again? Yes unless verified recently (REVERIFY_ARTIFACT_SECONDS)."""
    if status.get("phase") != "Ready":
        return True
    checked_at = (status.get("artifact") or {}).get("checkedAt")
    if not checked_at:
        return True
    last = datetime.fromisoformat(checked_at.replace("Z", "+00:00"))
    return (now - last).total_seconds() >= REVERIFY_ARTIFACT_SECONDS


def decide(spec: dict[str, Any], status: dict[str, Any], obs: ASRModelObservation, now: datetime) -> Decision:
    """Compute the ASRModel's new status from what verification found."""
    old_conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    check = obs.check
    artifact_status: dict[str, Any] = dict(status.get("artifact") or {})
    requeue: float
    if check is None:
        verified = condition("ArtifactVerified", "Unknown", "Pending", "artifact has not been checked yet")
        phase, message, requeue = "Verifying", "waiting for artifact verification", TRANSIENT_RETRY_SECONDS
    elif check.ok:
        verified = condition("ArtifactVerified", "True", "Verified", check.message)
        phase, message, requeue = "Ready", f"artifact verified: {check.message}", float(REVERIFY_ARTIFACT_SECONDS)
        artifact_status = {
            "verified": True,
            "sizeBytes": check.size_bytes,
            "sha256": check.sha256,
            "checkedAt": timestamp(now),
        }
    else:
        verified = condition("ArtifactVerified", "False", check.reason, check.message)
        permanent = check.reason in PERMANENT_FAILURES
        phase = "Failed" if permanent else "Verifying"
        message = f"artifact check failed ({check.reason}): {check.message}"
        requeue = float(REVERIFY_ARTIFACT_SECONDS) if permanent else TRANSIENT_RETRY_SECONDS
        artifact_status = {"verified": False, "checkedAt": timestamp(now)} | (
            {"sizeBytes": check.size_bytes} if check.size_bytes is not None else {}
        )
    ready = condition(
        "Ready",
        "True" if verified["status"] == "True" else "False",
        "ArtifactVerified" if verified["status"] == "True" else "ArtifactNotVerified",
        "model is ready to be rolled out" if verified["status"] == "True" else message,
    )
    new_conditions = [verified, ready]
    # Nothing to announce before the store was asked.
    events = condition_events(old_conditions, new_conditions) if check is not None else ()
    new_status = {
        "observedGeneration": obs.generation,
        "phase": phase,
        "message": message,
        "conditions": merge_conditions(old_conditions, new_conditions, now, obs.generation),
    }
    if artifact_status:
        new_status["artifact"] = {k: v for k, v in artifact_status.items() if v is not None}
    return Decision(status=new_status, events=events, requeue_after=requeue)
