"""ASRModel decisions: verification state → phase, conditions, events, next check.

Conditions:
- ArtifactVerified: Unknown until the store (or registry) was asked; True when size and sha256 (or the
  manifest digest of an ``oci://`` artifact) match; False with the reason (NotFound, DigestMismatch,
  SizeMismatch, AccessDenied, StoreUnavailable, RegistryUnavailable, ManifestNotFound, InvalidURI,
  FileArtifactsDisabled, OutsideArtifactRoot, TooLarge, …).
- ImageVerified (only with ``spec.image``): the registry holds the image reference; its digest is recorded.
- Ready: True when everything above is True.

Pace: a transient failure is looked at again after 30 s; a permanent one (the immutable spec is wrong)
only on a spec change or after a long, doubling back-off; a verified model every few minutes. The decided
time is written as ``status.nextCheckAt`` and the timer honours it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from senseops_operator.constants import REVERIFY_ARTIFACT_SECONDS
from senseops_operator.decide.common import Decision, condition, condition_events, merge_conditions, timestamp

# Reasons after which asking again soon will not help: the spec (immutable) is wrong, the object was
# replaced, or the operator's configuration refuses it. They are rechecked after a long back-off.
PERMANENT_FAILURES = frozenset({
    "DigestMismatch", "SizeMismatch", "InvalidURI", "UnsupportedScheme", "ManifestNotFound",
    "FileArtifactsDisabled", "OutsideArtifactRoot", "TooLarge",
})
TRANSIENT_RETRY_SECONDS = 30.0
PERMANENT_RECHECK_BASE_SECONDS = 1800.0
PERMANENT_RECHECK_MAX_SECONDS = 86_400.0


@dataclass(frozen=True)
class ArtifactCheck:
    """What the store said about the artifact (the handler fills it from the storage module)."""

    ok: bool
    reason: str
    message: str
    size_bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class RegistryAnswer:
    """What the registry said a reference names: a digest, or a failure ``reason`` and ``message``."""

    digest: str | None
    reason: str = "Verified"
    message: str = ""


@dataclass(frozen=True)
class ImageCheck:
    """Verification of ``spec.image``."""

    ok: bool
    reason: str
    message: str
    reference: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class ASRModelObservation:
    generation: int
    check: ArtifactCheck | None  # None: not checked (e.g. the check is still running or was skipped)
    image: ImageCheck | None = None  # None: no spec.image, or not checked


# --- pure checks the observer composes -------------------------------------------------------------------
def pinned_digest(reference: str) -> str | None:
    """``…@sha256:<hex>`` -> ``sha256:<hex>``; None for a tag-only reference."""
    _, sep, digest = reference.partition("@")
    return digest if sep else None


def oci_artifact_check(uri: str, expected_sha256: str, answer: RegistryAnswer) -> ArtifactCheck:
    """An ``oci://registry/repo@sha256:…`` artifact: the registry's manifest digest must equal the pinned
    digest and ``artifact.sha256``."""
    expected = "sha256:" + expected_sha256.lower().removeprefix("sha256:")
    pinned = pinned_digest(uri)
    if pinned is not None and pinned != expected:
        return ArtifactCheck(False, "DigestMismatch", f"{uri} pins {pinned} but artifact.sha256 is {expected}; "
                                                      "make them the same manifest digest")
    if answer.digest is None:
        fix = {"ManifestNotFound": "; push the image or correct artifact.uri"}.get(answer.reason, "")
        return ArtifactCheck(False, answer.reason, f"{answer.message}{fix}")
    if answer.digest != expected:
        return ArtifactCheck(False, "DigestMismatch", f"{uri}: the registry's manifest digest is {answer.digest}, "
                                                      f"expected {expected}; set artifact.sha256 to the image's "
                                                      "manifest digest (crane digest)", sha256=answer.digest)
    return ArtifactCheck(True, "Verified", f"{uri}: manifest digest {answer.digest}", sha256=answer.digest[7:])


def image_check(reference: str, answer: RegistryAnswer) -> ImageCheck:
    """``spec.image.reference``: a pinned digest must match the registry's; a tag gets its digest recorded."""
    pinned = pinned_digest(reference)
    if answer.digest is None:
        fix = {"ManifestNotFound": "; push the image or correct spec.image.reference"}.get(answer.reason, "")
        return ImageCheck(False, answer.reason, f"{answer.message}{fix}", reference)
    if pinned is not None and pinned != answer.digest:
        return ImageCheck(False, "DigestMismatch", f"{reference}: the registry holds {answer.digest}", reference,
                          answer.digest)
    return ImageCheck(True, "Verified", f"{reference}: manifest digest {answer.digest}", reference, answer.digest)


def file_artifact_path(uri: str, root: str | None) -> tuple[str | None, ArtifactCheck | None]:
    """Lexical check of a ``file://`` artifact against the operator's artifact root: (path, None) or
    (None, failure). The observer then resolves symlinks (:func:`inside_root` on real paths)."""
    if root is None:
        return None, ArtifactCheck(False, "FileArtifactsDisabled", f"{uri}: file:// artifacts are disabled on this "
                                   "operator; use s3://, cos:// or oci://, or set SENSEOPS_FILE_ARTIFACT_ROOT on the "
                                   "operator to the folder that holds models")
    raw = unquote(uri.removeprefix("file://"))
    if not raw.startswith("/") or ".." in raw.split("/"):
        return None, ArtifactCheck(False, "OutsideArtifactRoot", f"{uri}: a file:// artifact must be an absolute path "
                                   "without '..' segments")
    path = posixpath.normpath(raw)
    if not inside_root(path, root):
        return None, ArtifactCheck(False, "OutsideArtifactRoot", f"{uri}: file:// artifacts must lie under the "
                                   f"operator's artifact root {root}")
    return path + ("/" if raw.endswith("/") else ""), None


def inside_root(path: str, root: str) -> bool:
    """Is ``path`` ``root`` itself or below it (both normalised, no symlink resolution here)?"""
    p, r = posixpath.normpath(path), posixpath.normpath(root)
    return r == "/" or p == r or p.startswith(r + "/")


# --- pace --------------------------------------------------------------------------------------------------
def permanent_recheck_seconds(failed_checks: int) -> float:
    """Back-off for permanent failures: 30 min doubling to a day."""
    return float(min(PERMANENT_RECHECK_MAX_SECONDS, PERMANENT_RECHECK_BASE_SECONDS * 2 ** max(0, failed_checks - 1)))


def needs_recheck(status: dict[str, Any], now: datetime) -> bool:
    """Should the periodic timer verify again? When the decided ``nextCheckAt`` has come (objects written
    before it existed: unless verified within REVERIFY_ARTIFACT_SECONDS)."""
    next_at = status.get("nextCheckAt")
    if next_at:
        return now >= datetime.fromisoformat(next_at.replace("Z", "+00:00"))
    if status.get("phase") != "Ready":
        return True
    checked_at = (status.get("artifact") or {}).get("checkedAt")
    if not checked_at:
        return True
    last = datetime.fromisoformat(checked_at.replace("Z", "+00:00"))
    return (now - last).total_seconds() >= REVERIFY_ARTIFACT_SECONDS


def _verdict(ok: bool | None, reason: str) -> str:
    if ok is None:
        return "pending"
    if ok:
        return "ok"
    return "permanent" if reason in PERMANENT_FAILURES else "transient"


def decide(spec: dict[str, Any], status: dict[str, Any], obs: ASRModelObservation, now: datetime) -> Decision:
    """Compute the ASRModel's new status from what verification found."""
    old_conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    check = obs.check
    artifact_status: dict[str, Any] = dict(status.get("artifact") or {})
    if check is None:
        verified = condition("ArtifactVerified", "Unknown", "Pending", "artifact has not been checked yet")
        messages = ["waiting for artifact verification"]
    elif check.ok:
        verified = condition("ArtifactVerified", "True", "Verified", check.message)
        messages = [f"artifact verified: {check.message}"]
        artifact_status = {"verified": True, "sizeBytes": check.size_bytes, "sha256": check.sha256,
                           "checkedAt": timestamp(now)}
    else:
        verified = condition("ArtifactVerified", "False", check.reason, check.message)
        messages = [f"artifact check failed ({check.reason}): {check.message}"]
        artifact_status = {"verified": False, "checkedAt": timestamp(now)} | (
            {"sizeBytes": check.size_bytes} if check.size_bytes is not None else {}
        )
    verdicts = [_verdict(None if check is None else check.ok, check.reason if check else "")]
    new_conditions = [verified]
    image_status: dict[str, Any] | None = None
    if spec.get("image"):
        image = obs.image
        if image is None:
            new_conditions.append(condition("ImageVerified", "Unknown", "Pending", "image has not been checked yet"))
            verdicts.append("pending")
        elif image.ok:
            new_conditions.append(condition("ImageVerified", "True", "Verified", image.message))
            image_status = {"reference": image.reference, "digest": image.digest}
            verdicts.append("ok")
        else:
            new_conditions.append(condition("ImageVerified", "False", image.reason, image.message))
            messages.append(f"image check failed ({image.reason}): {image.message}")
            verdicts.append(_verdict(False, image.reason))
    failed_checks = 0
    if "permanent" in verdicts:
        failed_checks = int(status.get("failedChecks") or 0) + 1
        phase, requeue = "Failed", permanent_recheck_seconds(failed_checks)
    elif all(v == "ok" for v in verdicts):
        phase, requeue = "Ready", float(REVERIFY_ARTIFACT_SECONDS)
    else:
        phase, requeue = "Verifying", TRANSIENT_RETRY_SECONDS
    message = "; ".join(messages)
    ready_ok = phase == "Ready"
    ready_reason = "ArtifactVerified" if ready_ok else (
        "ArtifactNotVerified" if verified["status"] != "True" else "ImageNotVerified")
    new_conditions.append(condition("Ready", "True" if ready_ok else "False", ready_reason,
                                    "model is ready to be rolled out" if ready_ok else message))
    # Nothing to announce before the store was asked.
    events = condition_events(old_conditions, new_conditions) if check is not None else ()
    new_status: dict[str, Any] = {
        "observedGeneration": obs.generation,
        "phase": phase,
        "message": message,
        "conditions": merge_conditions(old_conditions, new_conditions, now, obs.generation),
        "nextCheckAt": timestamp(now + timedelta(seconds=requeue)),
        "failedChecks": failed_checks,
    }
    if artifact_status:
        new_status["artifact"] = {k: v for k, v in artifact_status.items() if v is not None}
    if image_status:
        new_status["image"] = image_status
    return Decision(status=new_status, events=events, requeue_after=requeue)
