"""ASRModel verification, finished: ``oci://`` artifacts and ``spec.image`` against the real registry, the
long back-off for permanent failures (the decided ``nextCheckAt`` is honoured), ``file://`` artifacts only
under the operator's root (no ``..``, no symlink escapes), and bounded artifact checks."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from senseops_common.storage import local_directory_manifest
from senseops_operator.decide import asrmodel as m
from senseops_operator.decide.common import find_condition
from senseops_operator.observe import ArtifactLimits, check_artifact, check_image
from senseops_operator.registry import RegistryClient
from tests.servers._proc import free_port
from tests.servers.registry import RegistryServer

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
HEX = "ab" * 32
DIGEST = "sha256:" + HEX
OTHER = "sha256:" + "cd" * 32
URI = f"oci://reg.example.com/asr/m@{DIGEST}"


@pytest.mark.parametrize(("name", "uri", "sha256", "answer", "ok", "reason", "says"), [
    ("pinned and matching", URI, HEX, m.RegistryAnswer(DIGEST), True, "Verified", DIGEST),
    ("tag only, matching", "oci://reg.example.com/asr/m:v1", HEX, m.RegistryAnswer(DIGEST), True, "Verified", ""),
    ("sha256 with prefix", URI, DIGEST, m.RegistryAnswer(DIGEST), True, "Verified", ""),
    ("pin disagrees with artifact.sha256", URI, "cd" * 32, m.RegistryAnswer(DIGEST), False, "DigestMismatch",
     "make them the same"),
    ("registry holds another digest", "oci://reg.example.com/asr/m:v1", HEX, m.RegistryAnswer(OTHER), False,
     "DigestMismatch", "crane digest"),
    ("missing", URI, HEX, m.RegistryAnswer(None, "ManifestNotFound", "no such manifest"), False,
     "ManifestNotFound", "push the image"),
    ("unreachable", URI, HEX, m.RegistryAnswer(None, "RegistryUnavailable", "refused"), False,
     "RegistryUnavailable", "refused"),
])
def test_oci_artifact_check(name: str, uri: str, sha256: str, answer: m.RegistryAnswer, ok: bool, reason: str,
                            says: str) -> None:
    check = m.oci_artifact_check(uri, sha256, answer)
    assert (check.ok, check.reason) == (ok, reason) and says in check.message, check.message


@pytest.mark.parametrize(("reference", "answer", "ok", "reason"), [
    (f"reg.example.com/asr/m@{DIGEST}", m.RegistryAnswer(DIGEST), True, "Verified"),
    ("reg.example.com/asr/m:v1", m.RegistryAnswer(OTHER), True, "Verified"),
    (f"reg.example.com/asr/m@{DIGEST}", m.RegistryAnswer(OTHER), False, "DigestMismatch"),
    ("reg.example.com/asr/m:v1", m.RegistryAnswer(None, "ManifestNotFound", "gone"), False, "ManifestNotFound"),
])
def test_image_check(reference: str, answer: m.RegistryAnswer, ok: bool, reason: str) -> None:
    check = m.image_check(reference, answer)
    assert (check.ok, check.reason) == (ok, reason)
    if ok:
        assert check.digest == answer.digest


@pytest.mark.parametrize(("uri", "root", "path", "reason"), [
    ("file:///models/m/v1/", None, None, "FileArtifactsDisabled"),
    ("file:///models/m/v1/", "/models", "/models/m/v1/", None),
    ("file:///models/m/v1", "/models/", "/models/m/v1", None),
    ("file:///models/../etc/passwd", "/models", None, "OutsideArtifactRoot"),
    ("file:///models/m/%2e%2e/%2e%2e/etc", "/models", None, "OutsideArtifactRoot"),
    ("file:///modelsx/m", "/models", None, "OutsideArtifactRoot"),
    ("file:///etc/shadow", "/models", None, "OutsideArtifactRoot"),
    ("file:///models//m/./v1/", "/models", "/models/m/v1/", None),
])
def test_file_artifact_path(uri: str, root: str | None, path: str | None, reason: str | None) -> None:
    got, failure = m.file_artifact_path(uri, root)
    assert got == path
    assert (failure.reason if failure else None) == reason


@pytest.mark.parametrize(("failed", "seconds"), [(1, 1800), (2, 3600), (3, 7200), (10, 86_400)])
def test_permanent_back_off(failed: int, seconds: float) -> None:
    assert m.permanent_recheck_seconds(failed) == seconds


SPEC: dict[str, Any] = {"version": "v1", "artifact": {"uri": "s3://b/models/m/v1/", "sha256": HEX}}
MISMATCH = m.ArtifactCheck(False, "DigestMismatch", "sha256 differs")


def test_permanent_failure_is_not_rechecked_until_its_back_off() -> None:
    first = m.decide(SPEC, {}, m.ASRModelObservation(1, MISMATCH), NOW)
    assert first.status["phase"] == "Failed" and first.status["failedChecks"] == 1
    assert first.status["nextCheckAt"] == "2026-11-29T08:30:00Z"
    # The 30 s timer fires many times before then and does nothing.
    assert not m.needs_recheck(first.status, NOW + timedelta(seconds=30))
    assert not m.needs_recheck(first.status, NOW + timedelta(minutes=29))
    assert m.needs_recheck(first.status, NOW + timedelta(minutes=30))
    second = m.decide(SPEC, first.status, m.ASRModelObservation(1, MISMATCH), NOW + timedelta(minutes=30))
    assert second.status["failedChecks"] == 2 and second.requeue_after == 3600
    fixed = m.decide(SPEC, second.status, m.ASRModelObservation(2, m.ArtifactCheck(True, "Verified", "ok", 1, HEX)),
                     NOW + timedelta(minutes=31))
    assert fixed.status["phase"] == "Ready" and fixed.status["failedChecks"] == 0


@pytest.mark.parametrize(("name", "image", "phase", "ready_reason"), [
    ("image verified", m.ImageCheck(True, "Verified", "ok", "r@" + DIGEST, DIGEST), "Ready", "ArtifactVerified"),
    ("image not checked", None, "Verifying", "ImageNotVerified"),
    ("registry down", m.ImageCheck(False, "RegistryUnavailable", "refused"), "Verifying", "ImageNotVerified"),
    ("image missing", m.ImageCheck(False, "ManifestNotFound", "gone"), "Failed", "ImageNotVerified"),
])
def test_image_gates_ready(name: str, image: m.ImageCheck | None, phase: str, ready_reason: str) -> None:
    spec = {**SPEC, "image": {"reference": "reg.example.com/asr/m:v1"}}
    ok = m.ArtifactCheck(True, "Verified", "ok", 1, HEX)
    decision = m.decide(spec, {}, m.ASRModelObservation(1, ok, image), NOW)
    assert decision.status["phase"] == phase
    assert find_condition(decision.status["conditions"], "Ready")["reason"] == ready_reason  # type: ignore[index]
    if image is not None and image.ok:
        assert decision.status["image"] == {"reference": "r@" + DIGEST, "digest": DIGEST}


# --- against real parts ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pushed(oci_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("oci-artifact")
    (folder / "model.pt").write_bytes(os.urandom(512))
    return oci_registry.push_model_dir(folder, "verify/m", "v1")


def test_oci_artifact_and_image_against_the_registry(oci_registry: RegistryServer, pushed: str) -> None:
    registry = RegistryClient(oci_registry.docker_config_dir / "config.json")
    digest = pushed.split("@", 1)[1]
    spec = {"artifact": {"uri": f"oci://{pushed}", "sha256": digest[7:]},
            "image": {"reference": f"{oci_registry.host}/verify/m:v1"}}
    check = check_artifact(spec, registry=registry)
    assert (check.ok, check.sha256) == (True, digest[7:]), check.message
    image = check_image(spec, registry)
    assert image is not None and (image.ok, image.digest) == (True, digest)
    wrong = {"artifact": {"uri": f"oci://{oci_registry.host}/verify/m:v1", "sha256": "0" * 64}}
    assert check_artifact(wrong, registry=registry).reason == "DigestMismatch"
    missing = {"artifact": {"uri": f"oci://{oci_registry.host}/verify/none:v1", "sha256": digest[7:]}}
    assert check_artifact(missing, registry=registry).reason == "ManifestNotFound"
    down = {"artifact": {"uri": f"oci://127.0.0.1:{free_port()}/verify/m@{digest}", "sha256": digest[7:]}}
    result = check_artifact(down, registry=RegistryClient(timeout_s=5))
    assert result.reason == "RegistryUnavailable" and m.decide(
        {"version": "v1", **down}, {}, m.ASRModelObservation(1, result), NOW).status["phase"] == "Verifying"


def model_folder(root: Path) -> tuple[Path, str]:
    folder = root / "m" / "v1"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights")
    (folder / "config.yaml").write_text("x: 1\n")
    return folder, local_directory_manifest(folder)[1]


def test_file_artifacts_only_under_the_root_and_never_through_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "models"
    folder, digest = model_folder(root)
    spec = {"artifact": {"uri": folder.as_uri() + "/", "sha256": digest}}
    assert check_artifact(spec, ArtifactLimits(file_root=None)).reason == "FileArtifactsDisabled"
    assert check_artifact(spec, ArtifactLimits(file_root=str(root))).ok
    assert check_artifact(spec, ArtifactLimits(file_root=str(tmp_path / "elsewhere"))).reason == "OutsideArtifactRoot"
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model")
    (root / "link").symlink_to(secret)
    linked = {"artifact": {"uri": (root / "link").as_uri(), "sha256": "0" * 64}}
    assert check_artifact(linked, ArtifactLimits(file_root=str(root))).reason == "OutsideArtifactRoot"
    (folder / "escape").symlink_to(secret)  # a link inside the model folder that leaves the root
    assert check_artifact(spec, ArtifactLimits(file_root=str(root))).reason == "OutsideArtifactRoot"


def test_artifact_checks_are_bounded_in_objects_and_bytes(tmp_path: Path) -> None:
    folder, digest = model_folder(tmp_path / "models")
    spec = {"artifact": {"uri": folder.as_uri() + "/", "sha256": digest}}
    root = str(tmp_path / "models")
    assert check_artifact(spec, ArtifactLimits(root, max_objects=2)).ok
    assert check_artifact(spec, ArtifactLimits(root, max_objects=1)).reason == "TooLarge"
    assert check_artifact(spec, ArtifactLimits(root, max_bytes=8)).reason == "TooLarge"
