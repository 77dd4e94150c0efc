"""The real OCI registry (distribution v3) with htpasswd auth, and model images pushed with the real crane."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
from pathlib import Path

import pytest

from tests.servers.registry import RegistryError, RegistryServer

LABELS = {
    "org.opencontainers.image.title": "tiny-sensevoice",
    "dev.senseops.model.version": "v7",
    "dev.senseops.note": "has, a comma",
}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model folder: a binary file, a text file, a nested file and an executable."""
    model = tmp_path / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "model.pt").write_bytes(hashlib.sha256(b"seed").digest() * 4096 + bytes(range(256)))
    (model / "config.yaml").write_text("encoder: SenseVoiceEncoderSmall\n")
    (model / "tokenizer" / "chn_jpn_yue_eng_ko_spectok.bpe.model").write_bytes(b"\x00\x01sp\xff" * 100)
    (model / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (model / "run.sh").chmod(0o755)
    return model


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_anonymous_push_and_pull_are_refused(oci_registry: RegistryServer, model_dir: Path) -> None:
    with pytest.raises(RegistryError, match=r"UNAUTHORIZED|401"):
        oci_registry.push_model_dir(model_dir, "models/anon", "v1", authenticated=False)
    ref = oci_registry.push_model_dir(model_dir, "models/private", "v1")
    refused = oci_registry.crane("digest", ref, authenticated=False, check=False)
    assert refused.returncode != 0 and ("UNAUTHORIZED" in refused.stderr or "401" in refused.stderr)


def test_pushed_model_exports_byte_for_byte_with_labels_and_digest(oci_registry: RegistryServer,
                                                                   model_dir: Path) -> None:
    ref = oci_registry.push_model_dir(model_dir, "models/tiny-sensevoice", "v7", labels=LABELS)
    repo, _, digest = ref.partition("@")
    assert repo == f"{oci_registry.host}/models/tiny-sensevoice" and digest.startswith("sha256:")
    # The digest read back by tag is the one the push returned.
    assert oci_registry.crane("digest", f"{repo}:v7").stdout.strip() == digest
    manifest = json.loads(oci_registry.crane("manifest", ref).stdout)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(manifest["layers"]) == 1
    assert hashlib.sha256(oci_registry.crane("manifest", ref).stdout.encode()).hexdigest() == digest.split(":")[1]
    config = json.loads(oci_registry.crane("config", ref).stdout)
    assert config["config"]["Labels"] == LABELS

    tar_bytes = oci_registry.export(ref)
    out = model_dir.parent / "exported"
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        tar.extractall(out, filter="data")
    assert _files(out / "models") == _files(model_dir)
    assert (out / "models" / "run.sh").stat().st_mode & 0o111


def test_restart_keeps_images_and_stop_leaves_nothing_listening(tmp_path: Path, model_dir: Path) -> None:
    server = RegistryServer(tmp_path / "registry").start()
    try:
        ref = server.push_model_dir(model_dir, "models/keep", "v1")
        pid = server.proc.pid if server.proc else 0
        server.stop()
        assert server.proc is None and not Path(f"/proc/{pid}").exists()
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
            pass
        server.start()
        assert server.crane("digest", f"{server.host}/models/keep:v1").stdout.strip() == ref.partition("@")[2]
    finally:
        server.stop()
