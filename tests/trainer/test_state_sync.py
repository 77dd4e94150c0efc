"""The work directory mirrored to the store, so a retried training pod resumes instead of starting again:
the pure push/restore plans, a mirror round trip on a real store, and the CLI resuming in a fresh work
directory (a new pod) from what an earlier run mirrored."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from senseops_common.speech import espeak_available
from senseops_common.storage import open_store
from senseops_trainer import synthetic
from senseops_trainer.manifest import MANIFEST_NAME
from senseops_trainer.state_sync import LocalFile, WorkdirMirror, mirrored, push_plan, restore_plan
from tests.trainer.test_data_stages import _config, cli

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("manifest.json", True),
        ("train/funasr/model.pt", True),
        ("data/train.jsonl", True),
        ("base_model/model.pt", False),  # re-downloaded and verified from its own URI
        ("train/model.partial/model.pt", False),  # an atomic write in progress
        ("export/x.onnx.tmp", False),
    ],
)
def test_what_is_mirrored(relative: str, expected: bool) -> None:
    assert mirrored(relative) is expected


@pytest.mark.parametrize(
    ("local", "pushed", "expected"),
    [
        pytest.param([LocalFile("a", 1, NOW - 10)], {}, ["a"], id="new file"),
        pytest.param([LocalFile("a", 1, NOW - 10)], {"a": (1, NOW - 10)}, [], id="unchanged"),
        pytest.param([LocalFile("a", 2, NOW - 10)], {"a": (1, NOW - 10)}, ["a"], id="grown"),
        pytest.param([LocalFile("a", 1, NOW - 0.5)], {}, [], id="still being written"),
        pytest.param([LocalFile(MANIFEST_NAME, 1, NOW - 9), LocalFile("z", 1, NOW - 9), LocalFile("b", 1, NOW - 9)],
                     {}, ["b", "z", MANIFEST_NAME], id="the manifest after the files it lists"),
        pytest.param([LocalFile("base_model/model.pt", 1, NOW - 9)], {}, [], id="base model excluded"),
    ],
)
def test_push_plan(local: list[LocalFile], pushed: dict[str, tuple[int, float]], expected: list[str]) -> None:
    assert push_plan(local, pushed, NOW, settle_s=2.0) == expected


@pytest.mark.parametrize(
    ("remote", "local", "expected"),
    [
        pytest.param({"a": (1, "x")}, {}, ["a"], id="missing locally"),
        pytest.param({"a": (1, "x")}, {"a": (1, "x")}, [], id="same"),
        pytest.param({"a": (1, "x")}, {"a": (1, "y")}, ["a"], id="different content"),
        pytest.param({"a": (1, None)}, {"a": (1, "y")}, [], id="no stored hash: same size is enough"),
        pytest.param({MANIFEST_NAME: (1, "m"), "b": (1, "x")}, {}, ["b", MANIFEST_NAME], id="manifest last"),
    ],
)
def test_restore_plan(remote: dict[str, tuple[int, str | None]], local: dict[str, tuple[int, str]],
                      expected: list[str]) -> None:
    assert restore_plan(remote, local) == expected


def test_mirror_round_trip_pushes_only_changes_and_restores_into_an_empty_workdir(tmp_path: Path) -> None:
    uri = (tmp_path / "store").as_uri() + "/runs/job/"
    work = tmp_path / "work"
    (work / "train" / "funasr").mkdir(parents=True)
    (work / "base_model").mkdir()
    (work / "train" / "funasr" / "model.pt").write_bytes(b"epoch-1")
    (work / "base_model" / "model.pt").write_bytes(b"base")
    (work / MANIFEST_NAME).write_text("{}")
    mirror = WorkdirMirror(uri, work, settle_s=0)
    assert mirror.push() == ["train/funasr/model.pt", MANIFEST_NAME]
    assert mirror.push() == []  # nothing changed
    time.sleep(0.01)
    (work / "train" / "funasr" / "model.pt").write_bytes(b"epoch-2!")
    assert mirror.push() == ["train/funasr/model.pt"]

    fresh = tmp_path / "fresh"  # the retried pod's empty work directory
    again = WorkdirMirror(uri, fresh, settle_s=0)
    assert sorted(again.restore()) == [MANIFEST_NAME, "train/funasr/model.pt"]
    assert (fresh / "train" / "funasr" / "model.pt").read_bytes() == b"epoch-2!"
    assert not (fresh / "base_model").exists()
    assert again.push() == []  # what was restored is not pushed back
    assert again.restore() == []  # already there
    assert again.clear() == 2
    assert list(open_store(uri).list("")) == []


def test_a_store_outage_during_background_pushes_does_not_stop_the_run(tmp_path: Path) -> None:
    class Down:
        def list(self, prefix: str = "") -> list[object]:
            return []

        def put(self, key: str, source: object) -> None:
            raise OSError("store unreachable")

    work = tmp_path / "work"
    work.mkdir()
    (work / "a").write_text("x")
    mirror = WorkdirMirror("file:///unused/", work, store=Down(), settle_s=0)  # type: ignore[arg-type]
    mirror.start(interval_s=0.05)
    time.sleep(0.3)
    mirror.stop()  # the loop logged and kept going; stop() returns
    with pytest.raises(OSError):
        mirror.push()


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make debian)")
def test_a_new_pod_resumes_the_stages_an_earlier_pod_finished(tmp_path: Path) -> None:
    recordings = (tmp_path / "recordings").as_uri() + "/"
    synthetic.write_corpus(open_store(recordings))
    state_uri = (tmp_path / "state").as_uri() + "/runs/ns/job/"
    config = _config(tmp_path, recordings)
    settings = json.loads(config.read_text())
    settings["state_uri"] = state_uri
    config.write_text(json.dumps(settings))

    work = tmp_path / "work"  # the Job's work directory: the same path in every pod, empty in each new one
    code, events = cli("run", "--config", str(config), "--workdir", str(work), "--until", "split")
    assert code == 0, events[-3:]
    restored = next(e for e in events if e["stage"] == "state")
    assert restored["event"] == "restored" and restored["files"] == 0
    assert any(e["event"] == "pushed" and e["after"] == "split" for e in events)

    # A second pod, an empty work directory: every finished stage is restored and skipped, not rerun.
    shutil.rmtree(work)
    code, events = cli("run", "--config", str(config), "--workdir", str(work), "--until", "split")
    assert code == 0, events[-3:]
    restored = next(e for e in events if e["stage"] == "state")
    assert restored["files"] > 0
    assert {e["stage"] for e in events if e["event"] == "skipped"} == {"collect", "filter", "normalize", "split"}
    assert not [e for e in events if e["event"] == "done" and e["stage"] != "run"]
