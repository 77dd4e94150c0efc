"""Retention sweeper and delete-anchor on every backend (file://, MinIO, the COS stand-in)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from senseops_common.storage.retention import (
    delete_anchor,
    filter_jsonl,
    is_expired,
    main,
    parse_keep,
    parse_period,
    sweep,
)
from tests.storage.backends import Backend

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PERIODS = {"raw/": timedelta(days=30), "asr/": timedelta(days=365)}


@pytest.mark.parametrize(
    ("key", "expired"),
    [
        ("raw/a1/20260401T000000Z/s.wav", True),  # 61 days > 30
        ("raw/a1/20260515T000000Z/s.wav", False),
        ("asr/a1/20260401T000000Z/c-part-000000.jsonl", False),  # transcripts are kept a year
        ("asr/a1/20250101T000000Z/part-000000.jsonl", True),
        ("raw/a1/not-a-ts/s.wav", None),  # unknown age: never deleted
        ("raw/loose.wav", None),
        ("models/m/v1/model.pt", False),  # no period for this prefix
    ],
)
def test_is_expired(key: str, expired: bool | None) -> None:
    assert is_expired(key, NOW, PERIODS) is expired


def test_periods_parse_and_refuse_nonsense() -> None:
    assert parse_period("30d") == timedelta(days=30) and parse_period("12h") == timedelta(hours=12)
    assert parse_period("7") == timedelta(days=7)
    assert parse_keep(["raw/=30d", "asr/=365d"]) == {"raw/": timedelta(days=30), "asr/": timedelta(days=365)}
    for bad in (["raw=30d"], ["raw/=a month"]):
        with pytest.raises(ValueError):
            parse_keep(bad)


def test_filter_jsonl_drops_the_anchors_lines_only() -> None:
    data = b"".join(json.dumps(row).encode() + b"\n" for row in [
        {"anchor_id": "a1", "text": "x"},
        {"key": "s1", "source": "/work/audio/a1/20260101T000000Z/s1.wav"},
        {"key": "s2", "source": "/work/audio/a10/20260101T000000Z/s2.wav"},  # a prefix-sharing anchor stays
        {"anchor_id": "a2"},
    ]) + b"not json\n"
    kept, removed = filter_jsonl(data, "a1")
    assert removed == 2
    assert kept.count(b"\n") == 3 and b"a10" in kept and b"not json" in kept


def _seed(store: object, anchor: str, ts: str) -> None:
    put = store.put  # type: ignore[attr-defined]
    put(f"raw/{anchor}/{ts}/s1.wav", b"RIFF")
    put(f"asr/{anchor}/{ts}/c-part-000000.jsonl", json.dumps({"anchor_id": anchor}).encode() + b"\n")


def test_sweep_deletes_only_what_is_past_its_period(backend: Backend) -> None:
    store = backend.store
    _seed(store, "a1", "20260401T000000Z")  # raw expired, asr kept
    _seed(store, "a1", "20260520T000000Z")  # both kept
    store.put("raw/a1/odd-folder/x.wav", b"?")
    preview = sweep(store, PERIODS, NOW, dry_run=True)
    assert preview.deleted == [store.uri_for("raw/a1/20260401T000000Z/s1.wav")]
    assert store.exists("raw/a1/20260401T000000Z/s1.wav")  # dry run removed nothing
    report = sweep(store, PERIODS, NOW)
    assert report.deleted == preview.deleted and report.unknown_age == 1 and report.kept == 3
    assert sorted(i.key for i in store.list("")) == [
        "asr/a1/20260401T000000Z/c-part-000000.jsonl",
        "asr/a1/20260520T000000Z/c-part-000000.jsonl",
        "raw/a1/20260520T000000Z/s1.wav",
        "raw/a1/odd-folder/x.wav",
    ]


def test_delete_anchor_erases_everywhere_and_says_what(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    _seed(store, "a1", "20260401T000000Z")
    _seed(store, "a10", "20260401T000000Z")  # shares a prefix: must survive
    store.put("golden/a1.jsonl", b'{"anchor_id": "a1"}\n')
    store.put("reports/ft-1/split-train.jsonl", b'{"anchor_id": "a1"}\n{"anchor_id": "a10"}\n')
    work = tmp_path / "ft-1"
    (work / "audio" / "a1" / "20260401T000000Z").mkdir(parents=True)
    (work / "audio" / "a1" / "20260401T000000Z" / "s1.wav").write_bytes(b"RIFF")
    (work / "split").mkdir()
    (work / "split" / "train.jsonl").write_text(
        json.dumps({"key": "s1", "source": str(work / "audio/a1/20260401T000000Z/s1.wav")}) + "\n"
        + json.dumps({"key": "s9", "source": str(work / "audio/a10/20260401T000000Z/s9.wav")}) + "\n"
    )
    report = delete_anchor(store, "a1", [work])
    assert sorted(i.key for i in store.list("")) == [
        "asr/a10/20260401T000000Z/c-part-000000.jsonl",
        "raw/a10/20260401T000000Z/s1.wav",
        "reports/ft-1/split-train.jsonl",
    ]
    assert store.get_bytes("reports/ft-1/split-train.jsonl") == b'{"anchor_id": "a10"}\n'
    assert not (work / "audio" / "a1").exists()
    train_list = (work / "split" / "train.jsonl").read_text()
    assert "a10" in train_list and '"s1"' not in train_list
    assert len(report.deleted) == 4 and report.rewritten == {
        store.uri_for("reports/ft-1/split-train.jsonl"): 1, str(work / "split" / "train.jsonl"): 1
    }
    with pytest.raises(ValueError):
        delete_anchor(store, "../a1")


def test_cli_prints_what_it_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from senseops_common.storage import StoreConfig, open_store

    uri = f"file://{tmp_path}/store/"
    store = open_store(uri, StoreConfig())
    _seed(store, "a1", "20200101T000000Z")
    assert main(["delete-anchor", "--store", uri, "--anchor", "a1", "--dry-run"]) == 0
    assert "would delete" in capsys.readouterr().out and store.exists("raw/a1/20200101T000000Z/s1.wav")
    assert main(["sweep", "--store", uri, "--keep", "raw/=30d"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {store.uri_for('raw/a1/20200101T000000Z/s1.wav')}" in out and "deleted 1 object(s)" in out
    assert main(["sweep", "--store", uri, "--keep", "raw=30d"]) == 2


def test_the_cronjob_runs_this_command_with_arguments_it_accepts(tmp_path: Path) -> None:
    import yaml

    manifest = Path(__file__).resolve().parents[2] / "manifests" / "runtime" / "retention-cronjob.yaml"
    job = yaml.safe_load(manifest.read_text())
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "senseops_common.storage.retention"]
    args = [a if not a.startswith("--store=") else f"--store=file://{tmp_path}/store/" for a in container["args"]]
    assert main([*args, "--dry-run"]) == 0
