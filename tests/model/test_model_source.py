"""Model URI → verified local cache: file:// in place, download + sha256 + cache through file:// and MinIO."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from senseops_common.storage import MANIFEST_NAME, StoreConfig, local_directory_manifest, open_store
from senseops_runtime.model_source import ModelSourceError, resolve_model_dir


def _artifact(root: Path, with_manifest: bool = True) -> tuple[Path, str]:
    root.mkdir(parents=True)
    (root / "config.yaml").write_text("model: SenseVoiceSmall\n")
    (root / "model.pt").write_bytes(b"\x00weights" * 1000)
    (root / "sub").mkdir()
    (root / "sub" / "am.mvn").write_text("<Nnet>\n")
    manifest, digest, _ = local_directory_manifest(root)
    if with_manifest:
        (root / MANIFEST_NAME).write_text(manifest)
    return root, digest


def test_local_path_and_file_uri_are_used_in_place(tmp_path: Path) -> None:
    root, digest = _artifact(tmp_path / "m")
    assert resolve_model_dir(str(root)) == root
    assert resolve_model_dir(f"file://{root}/", expected_sha256=digest) == root
    with pytest.raises(ModelSourceError, match="expected"):
        resolve_model_dir(f"file://{root}", expected_sha256="0" * 64)
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "missing"))


def test_download_verifies_and_caches(tmp_path: Path) -> None:
    root, digest = _artifact(tmp_path / "store" / "models" / "sv" / "v1")
    cache = tmp_path / "cache"
    uri = f"file://{tmp_path}/store/models/sv/v1/"
    local = resolve_model_dir(uri, cache, expected_sha256=digest, copy_file_uris=True)
    assert local.parent == cache and local.name == digest
    assert (local / "sub" / "am.mvn").read_text() == "<Nnet>\n"
    # second call: served from the cache even when the store is gone
    (root / "model.pt").unlink()
    assert resolve_model_dir(uri, cache, expected_sha256=digest, copy_file_uris=True) == local


def test_manifest_is_checked_when_no_digest_is_given(tmp_path: Path) -> None:
    root, _ = _artifact(tmp_path / "store" / "m")
    uri = f"file://{root}/"
    assert (resolve_model_dir(uri, tmp_path / "c1", copy_file_uris=True) / "model.pt").is_file()
    (root / "model.pt").write_bytes(b"tampered")
    with pytest.raises(ModelSourceError, match=r"model\.pt .* manifest says"):
        resolve_model_dir(uri, tmp_path / "c2", copy_file_uris=True)
    assert not any((tmp_path / "c2").glob("uri-*/model.pt"))  # nothing half-verified is left behind


def test_unverifiable_or_wrong_artifacts_are_refused(tmp_path: Path) -> None:
    root, digest = _artifact(tmp_path / "store" / "m", with_manifest=False)
    uri = f"file://{root}/"
    with pytest.raises(ModelSourceError, match=r"no MANIFEST\.sha256"):
        resolve_model_dir(uri, tmp_path / "c", copy_file_uris=True)
    with pytest.raises(ModelSourceError, match="expected"):
        resolve_model_dir(uri, tmp_path / "c", expected_sha256="f" * 64, copy_file_uris=True)
    with pytest.raises(ModelSourceError, match="64 hexadecimal"):
        resolve_model_dir(uri, tmp_path / "c", expected_sha256="abc")
    with pytest.raises(ModelSourceError, match="no model URI"):
        resolve_model_dir("")
    with pytest.raises(ModelSourceError, match="no objects"):
        resolve_model_dir(f"file://{tmp_path}/empty/", tmp_path / "c", expected_sha256=digest, copy_file_uris=True)


@pytest.mark.parametrize("scheme", ["s3", "cos"])
def test_download_from_object_store(
    tmp_path: Path, scheme: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s3:// on a real MinIO; cos:// through the real COS SDK against the protocol stand-in."""
    root, digest = _artifact(tmp_path / "local")
    if scheme == "s3":
        server = request.getfixturevalue("minio_server")
        bucket = "models-" + secrets.token_hex(4)
    else:
        server = request.getfixturevalue("cos_standin")
        bucket = f"models{secrets.token_hex(3)}-1250000000"
    server.create_bucket(bucket)
    env = server.store_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store = open_store(f"{scheme}://{bucket}/models/sv/v7/", StoreConfig.from_env(env))
    for file in root.rglob("*"):
        if file.is_file():
            store.put(file.relative_to(root).as_posix(), file)
    local = resolve_model_dir(f"{scheme}://{bucket}/models/sv/v7", tmp_path / "cache", expected_sha256=digest)
    assert (local / "model.pt").read_bytes() == (root / "model.pt").read_bytes()
    assert (local / "sub" / "am.mvn").is_file()
    with pytest.raises(ModelSourceError, match="expected"):
        resolve_model_dir(f"{scheme}://{bucket}/models/sv/v7/", tmp_path / "cache2", expected_sha256="1" * 64)
    with pytest.raises(ModelSourceError, match="no objects"):
        resolve_model_dir(f"{scheme}://{bucket}/models/none/", tmp_path / "cache3", expected_sha256=digest)


def test_download_reports_bytes_as_json_lines_off_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    root, digest = _artifact(tmp_path / "store" / "m")
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    monkeypatch.delenv("SENSEOPS_PROGRESS", raising=False)
    resolve_model_dir(f"file://{root}/", tmp_path / "cache", expected_sha256=digest, copy_file_uris=True)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    progress = [line for line in lines if (line.get("stage"), line.get("event")) == ("model download", "progress")]
    assert progress, "no progress lines on stderr"
    assert all(line["total"] == total and line["unit"] == "B" for line in progress)
    assert progress[-1]["done"] == total and progress[-1]["finished"] is True and progress[-1]["files"] == "4/4"
    assert len(progress) <= 3  # rate-limited: the first, (maybe) one more, the last — not one per chunk


def test_store_download_calls_progress_with_the_bytes_so_far(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/store/")
    payload = secrets.token_bytes(3 * 1024 * 1024 + 17)  # several chunks
    store.put("big.bin", payload)
    seen: list[int] = []
    store.download("big.bin", tmp_path / "out.bin", progress=seen.append)
    assert len(seen) > 1 and seen == sorted(seen) and seen[-1] == len(payload)
    assert (tmp_path / "out.bin").read_bytes() == payload
