"""Model directories in and out of a store (file:// here; MinIO in the end-to-end test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from senseops_common.storage import local_directory_manifest, open_store, verify_object
from senseops_trainer.context import StageFailed
from senseops_trainer.package import fetch_model_dir, upload_model_dir


def model_dir(root: Path, weights: bytes = b"weights-1") -> Path:
    root.mkdir(parents=True)
    (root / "model.pt").write_bytes(weights)
    (root / "config.yaml").write_text("model: SenseVoiceSmall\n")
    (root / "sub").mkdir()
    (root / "sub" / "extra.txt").write_text("x")
    return root


def test_upload_then_fetch_round_trips_and_verifies(tmp_path) -> None:
    store_uri = (tmp_path / "store").as_uri() + "/"
    local = model_dir(tmp_path / "m")
    result = upload_model_dir(local, store_uri, "sv", "v1")
    _, digest, size = local_directory_manifest(local)
    assert (result["sha256"], result["size"], result["uploaded"]) == (digest, size, True)
    assert verify_object(result["uri"], digest).ok
    fetched = fetch_model_dir(result["uri"], tmp_path / "fetched")
    assert (fetched / "model.pt").read_bytes() == b"weights-1"
    assert (fetched / "sub" / "extra.txt").read_text() == "x"


def test_same_content_is_idempotent_and_different_content_is_refused(tmp_path) -> None:
    store_uri = (tmp_path / "store").as_uri() + "/"
    upload_model_dir(model_dir(tmp_path / "a"), store_uri, "sv", "v1")
    again = upload_model_dir(model_dir(tmp_path / "b"), store_uri, "sv", "v1")
    assert again["uploaded"] is False
    with pytest.raises(StageFailed, match="immutable"):
        upload_model_dir(model_dir(tmp_path / "c", b"weights-2"), store_uri, "sv", "v1")


def test_fetch_refuses_a_tampered_model(tmp_path) -> None:
    store_uri = (tmp_path / "store").as_uri() + "/"
    result = upload_model_dir(model_dir(tmp_path / "m"), store_uri, "sv", "v1")
    open_store(store_uri).put("models/sv/v1/model.pt", b"evil")
    with pytest.raises(StageFailed, match="do not match"):
        fetch_model_dir(result["uri"], tmp_path / "fetched")
    assert not (tmp_path / "fetched").exists()


def test_fetch_of_a_missing_model_says_so(tmp_path) -> None:
    with pytest.raises(StageFailed, match="no model files"):
        fetch_model_dir((tmp_path / "nothing").as_uri() + "/models/x/v1/", tmp_path / "fetched")
