"""The trainer's model image builder (``senseops_trainer build-image``) against the real registry and crane:
the packaged model's files under /models/{name}/{version}/, on a base image, with OCI labels, pushed with
docker-config credentials; the digest reported in the termination message; a changed package refused."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from senseops_trainer import cli
from senseops_trainer.context import StageFailed
from senseops_trainer.image import build_image, label_flag, parse_labels, repository_of, write_layer
from senseops_trainer.package import upload_model_dir
from tests.servers._proc import go_binary
from tests.servers.registry import RegistryServer


@pytest.fixture(autouse=True)
def crane_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The builder finds crane through SENSEOPS_CRANE (a pod finds it on PATH)."""
    monkeypatch.setenv("SENSEOPS_CRANE", str(go_binary("crane")))


@pytest.mark.parametrize(("image", "repo"), [
    ("127.0.0.1:5000/asr/m:v1", "127.0.0.1:5000/asr/m"),
    ("127.0.0.1:5000/asr/m", "127.0.0.1:5000/asr/m"),
    ("reg.example.com/a/b@sha256:" + "a" * 64, "reg.example.com/a/b"),
    ("reg.example.com:443/a/b:1.0-rc", "reg.example.com:443/a/b"),
])
def test_repository_of(image: str, repo: str) -> None:
    assert repository_of(image) == repo


def test_labels_parse_and_quote() -> None:
    assert parse_labels(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="key=value"):
        parse_labels(["novalue"])
    assert label_flag("k", "v") == "k=v"
    assert label_flag("k", "a,b") == '"k=a,b"'


def model_dir(root: Path) -> Path:
    folder = root / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.pt").write_bytes(os.urandom(2048))
    (folder / "config.yaml").write_text("encoder: tiny\n")
    (folder / "sub" / "tokens.txt").write_text("a\nb\n")
    return folder


def test_layer_is_reproducible_and_holds_only_the_model(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    (folder / ".complete").write_text("")
    write_layer(folder, "models/m/v1", tmp_path / "a.tar")
    write_layer(folder, "models/m/v1", tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
        assert all(m.uid == 0 and m.mtime == 0 for m in tar.getmembers())
    assert "models/m/v1/model.pt" in names and "models/m/v1/sub/tokens.txt" in names
    assert not any(n.endswith(".complete") for n in names)
    (folder / "link").symlink_to(folder / "model.pt")
    with pytest.raises(StageFailed, match="regular file"):
        write_layer(folder, "models/m/v1", tmp_path / "c.tar")


@pytest.fixture
def packaged(tmp_path: Path) -> tuple[str, str, Path]:
    folder = model_dir(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    published = upload_model_dir(folder, store.as_uri() + "/", "m", "v1")
    return published["uri"], published["sha256"], folder


def test_build_pushes_model_files_on_a_base_with_labels_and_reports_the_digest(
        oci_registry: RegistryServer, packaged: tuple[str, str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    uri, sha256, folder = packaged
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    (base_dir / "runtime.txt").write_text("runtime base")
    base = oci_registry.push_model_dir(base_dir, "senseops/runtime-base", "t1")
    for key, value in oci_registry.crane_env().items():
        monkeypatch.setenv(key, value)
    image = f"{oci_registry.host}/asr/m:v1"
    message = tmp_path / "termination-log"
    code = cli.main(["build-image", "--model-uri", uri, "--sha256", sha256, "--image", image, "--name", "m",
                     "--version", "v1", "--base", base, "--label", "dev.senseops.model.name=m",
                     "--label", "org.opencontainers.image.version=v1", "--workdir", str(tmp_path / "work"),
                     "--termination-log", str(message)])
    assert code == 0
    steps = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    events = {s.get("event"): s for s in steps if s.get("stage") == "build-image"}
    assert events["pushed"]["bytes_pushed"] == events["layer"]["bytes"] > (folder / "model.pt").stat().st_size
    assert events["fetched"]["files"] == 4  # three model files and the manifest
    reported = json.loads(message.read_text())
    assert reported["digest"] == oci_registry.crane("digest", image).stdout.strip()
    assert reported["reference"] == f"{oci_registry.host}/asr/m@{reported['digest']}"
    config = json.loads(oci_registry.crane("config", image).stdout)
    assert config["config"]["Labels"] == {"dev.senseops.model.name": "m", "org.opencontainers.image.version": "v1"}
    with tarfile.open(fileobj=io.BytesIO(oci_registry.export(image))) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert files["models/m/v1/model.pt"] == (folder / "model.pt").read_bytes()
    assert files["models/m/v1/sub/tokens.txt"] == b"a\nb\n"
    assert "models/m/v1/MANIFEST.sha256" in files
    assert files["models/runtime.txt"] == b"runtime base"  # the base image's layer is kept


def test_a_package_that_changed_is_refused_and_nothing_is_pushed(
        oci_registry: RegistryServer, packaged: tuple[str, str, Path], tmp_path: Path) -> None:
    uri, _, _ = packaged
    image = f"{oci_registry.host}/asr/changed:v1"
    with pytest.raises(StageFailed, match="not the published"):
        build_image(uri, "0" * 64, image, "m", "v1", {}, tmp_path / "work")
    assert oci_registry.crane("ls", f"{oci_registry.host}/asr/changed", check=False).returncode != 0


def test_a_refused_push_reports_the_registry_error(oci_registry: RegistryServer, packaged: tuple[str, str, Path],
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri, sha256, _ = packaged
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-credentials"))
    message = tmp_path / "termination-log"
    code = cli.main(["build-image", "--model-uri", uri, "--sha256", sha256, "--image",
                     f"{oci_registry.host}/asr/anon:v1", "--name", "m", "--version", "v1",
                     "--workdir", str(tmp_path / "work"), "--termination-log", str(message)])
    assert code == cli.EXIT_FAILED
    error = json.loads(message.read_text())["error"]
    assert "crane append" in error and "UNAUTHORIZED" in error.upper(), error
