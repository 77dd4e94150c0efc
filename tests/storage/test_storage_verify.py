"""verify_object on every backend: single objects and directory artifacts (manifest digest)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from senseops_common.storage import (
    MANIFEST_NAME,
    StoreConfig,
    local_directory_manifest,
    manifest_digest,
    manifest_text,
    verify_object,
)
from tests.servers._proc import free_port
from tests.storage.backends import Backend


def test_manifest_format_is_sorted_sha256sum_lines() -> None:
    entries = [("b/x.bin", "22" * 32), ("a.txt", "11" * 32), ("B.txt", "33" * 32)]
    assert manifest_text(entries) == f"{'33' * 32}  B.txt\n{'11' * 32}  a.txt\n{'22' * 32}  b/x.bin\n"
    assert manifest_digest(entries) == hashlib.sha256(manifest_text(entries).encode()).hexdigest()
    with pytest.raises(ValueError):
        manifest_text([("bad\nname", "00")])


def test_local_manifest_is_checkable_with_sha256sum(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "sub" / "config.yaml").write_text("a: 1\n")
    text, digest, size = local_directory_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(text)
    assert local_directory_manifest(tmp_path)[1] == digest  # the manifest itself is not part of it
    assert size == len(b"weights") + len("a: 1\n")
    check = subprocess.run(["sha256sum", "-c", MANIFEST_NAME], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_verify_single_object(backend: Backend) -> None:
    data = b"artifact bytes" * 1000
    backend.store.put("models/sv/v1.onnx", data)
    uri = backend.root_uri + "models/sv/v1.onnx"
    digest = hashlib.sha256(data).hexdigest()
    ok = verify_object(uri, digest, len(data), config=backend.config)
    assert (ok.ok, ok.reason, ok.size, ok.sha256) == (True, "Verified", len(data), digest)
    assert verify_object(uri, "sha256:" + digest.upper(), config=backend.config).ok
    assert verify_object(uri, digest, config=backend.config, deep=True).ok
    bad = verify_object(uri, "0" * 64, config=backend.config)
    assert (bad.ok, bad.reason) == (False, "DigestMismatch") and uri in bad.message
    size = verify_object(uri, digest, len(data) + 1, config=backend.config)
    assert (size.ok, size.reason) == (False, "SizeMismatch")
    missing = verify_object(backend.root_uri + "models/sv/v2.onnx", digest, config=backend.config)
    assert (missing.ok, missing.reason) == (False, "NotFound")


def test_verify_directory_artifact(backend: Backend, tmp_path: Path) -> None:
    local = tmp_path / "model"
    (local / "tokens").mkdir(parents=True)
    (local / "model.pt").write_bytes(b"w" * 5000)
    (local / "config.yaml").write_text("model: SenseVoiceSmall\n")
    (local / "tokens" / "bpe.model").write_bytes(b"bpe")
    text, digest, size = local_directory_manifest(local)
    for file in sorted(local.rglob("*")):
        if file.is_file():
            backend.store.put("models/sv/v3/" + file.relative_to(local).as_posix(), file)
    backend.store.put("models/sv/v3/" + MANIFEST_NAME, text.encode())
    backend.store.put("models/sv/v30/other.bin", b"a sibling prefix must not count")
    for uri in (backend.root_uri + "models/sv/v3/", backend.root_uri + "models/sv/v3"):
        result = verify_object(uri, digest, size, config=backend.config)
        assert (result.ok, result.reason, result.size) == (True, "Verified", size), result.message
    backend.store.put("models/sv/v3/extra.txt", b"tampered")
    tampered = verify_object(backend.root_uri + "models/sv/v3/", digest, config=backend.config)
    assert (tampered.ok, tampered.reason) == (False, "DigestMismatch")


def test_verify_reports_unreachable_store_and_bad_uri() -> None:
    config = StoreConfig(s3_endpoint=f"http://127.0.0.1:{free_port()}", s3_path_style=True, s3_access_key="a",
                         s3_secret_key="b", request_timeout_s=0.5, deadline_s=2.0, max_attempts=2)
    down = verify_object("s3://bucket/models/x.pt", "0" * 64, config=config)
    assert (down.ok, down.reason) == (False, "StoreUnavailable")
    bad = verify_object("http://example.com/x", "0" * 64, config=config)
    assert (bad.ok, bad.reason) == (False, "InvalidURI")
