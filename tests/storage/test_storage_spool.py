"""SpoolWriter behaviour on the file:// store (the MinIO outage + SIGKILL case is in
test_storage_spool_fault.py)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from senseops_common.storage import KeyConflict, SpoolFull, StoreConfig, Unavailable, open_store
from senseops_common.storage.base import Payload
from senseops_common.storage.file_backend import FileStore
from senseops_common.storage.spool import SpoolWriter


def _metric(name: str, spool: str) -> float:
    return REGISTRY.get_sample_value(name, {"spool": spool}) or 0.0


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return open_store(f"file://{tmp_path}/store", StoreConfig())  # type: ignore[return-value]


def test_write_is_durable_before_upload_and_uploaded_after_start(store: FileStore, tmp_path: Path) -> None:
    name = "t-" + secrets.token_hex(4)
    writer = SpoolWriter(store, tmp_path / "spool", name=name)
    receipt = writer.write("raw/a/20260101T000000Z/s1.wav", b"pcm" * 100)
    assert receipt.sha256 == hashlib.sha256(b"pcm" * 100).hexdigest()
    assert len(list((tmp_path / "spool" / "entries").glob("*.json"))) == 1
    assert not store.exists("raw/a/20260101T000000Z/s1.wav")  # nothing uploads before start()
    assert _metric("senseops_spool_pending_files", name) == 1
    writer.start()
    assert writer.drain(10)
    writer.close()
    assert store.get_bytes("raw/a/20260101T000000Z/s1.wav") == b"pcm" * 100
    assert list((tmp_path / "spool" / "entries").iterdir()) == []
    assert _metric("senseops_spool_uploaded_total", name) == 1
    assert _metric("senseops_spool_pending_bytes", name) == 0


def test_restart_rescans_committed_entries_and_drops_uncommitted(store: FileStore, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = SpoolWriter(store, spool, name="t-" + secrets.token_hex(4))
    for n in range(5):
        first.write(f"k/{n}", f"v{n}".encode())
    del first  # "crash": never started, nothing uploaded
    (spool / "entries" / "deadbeef.0000.data").write_bytes(b"never committed")
    (spool / "tmp" / "half-written").write_bytes(b"partial")
    second = SpoolWriter(store, spool, name="t-" + secrets.token_hex(4))
    assert second.pending_files == 5
    assert not (spool / "entries" / "deadbeef.0000.data").exists()
    assert list((spool / "tmp").iterdir()) == []
    second.start()
    assert second.drain(10)
    second.close()
    assert [store.get_bytes(f"k/{n}") for n in range(5)] == [f"v{n}".encode() for n in range(5)]


def test_full_spool_refuses_with_a_clear_error_log_and_metric(
    store: FileStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = "t-" + secrets.token_hex(4)
    writer = SpoolWriter(store, tmp_path / "spool", name=name, max_files=2, max_bytes=1000)
    writer.write("a", b"1")
    writer.write("b", b"2")
    writer.write("a", b"1")  # the same bytes again are a no-op and need no new slot
    with caplog.at_level(logging.ERROR, logger="senseops.storage.spool"), pytest.raises(SpoolFull) as caught:
        writer.write("c", b"3")
    assert "full" in str(caught.value) and "nothing was stored" in str(caught.value)
    assert any("is FULL" in r.getMessage() for r in caplog.records)
    with pytest.raises(SpoolFull):
        writer.write("d", b"x" * 2000)
    assert _metric("senseops_spool_rejected_total", name) == 2
    assert _metric("senseops_spool_full", name) == 1
    assert len(list((tmp_path / "spool" / "entries").glob("*.json"))) == 2
    writer.start()
    assert writer.drain(10)
    assert _metric("senseops_spool_full", name) == 0
    writer.write("c", b"3")  # accepted again
    assert writer.drain(10)
    writer.close()
    assert store.get_bytes("a") == b"1" and store.get_bytes("c") == b"3"


class FlakyFileStore(FileStore):
    """The real file store, made to fail its first uploads with Unavailable (an outage)."""

    failures_left = 3
    uploads = 0

    def _upload(self, full: str, payload: Payload) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise Unavailable(f"{self.uri_for(full)}: simulated outage", self.uri_for(full))
        self.uploads += 1
        super()._upload(full, payload)


def test_upload_retries_through_failures_and_skips_objects_already_stored(tmp_path: Path) -> None:
    config = StoreConfig(max_attempts=1, deadline_s=1)
    flaky = FlakyFileStore(tmp_path / "store", f"file://{tmp_path}/store/", config)
    name = "t-" + secrets.token_hex(4)
    writer = SpoolWriter(flaky, tmp_path / "spool", name=name, max_backoff_s=0.2)
    writer.write("seg/1", b"one")
    writer.start()
    assert writer.drain(20)
    assert flaky.get_bytes("seg/1") == b"one" and flaky.uploads == 1
    assert _metric("senseops_spool_upload_errors_total", name) == 3
    # Same key and bytes already in the store (a crash after upload, before the spool entry was removed):
    writer.write("seg/1", b"one")
    assert writer.drain(10)
    writer.close()
    assert flaky.uploads == 1  # no second upload


def test_spool_refuses_unsafe_keys(store: FileStore, tmp_path: Path) -> None:
    writer = SpoolWriter(store, tmp_path / "spool", name="t-" + secrets.token_hex(4))
    from senseops_common.storage import InvalidURI, StorageError

    with pytest.raises(InvalidURI):
        writer.write("../x", b"1")
    with pytest.raises(StorageError):
        writer.write("dir/", b"1")
    assert writer.pending_files == 0


def test_unusable_record_is_quarantined_not_deleted(store: FileStore, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = SpoolWriter(store, spool, name="t-" + secrets.token_hex(4))
    first.write("good", b"1")
    first.write("lost-data", b"2")
    record = next(p for p in (spool / "entries").glob("*.json") if '"lost-data"' in p.read_text())
    (spool / "entries" / __import__("json").loads(record.read_text())["data"]).unlink()
    (spool / "entries" / "garbage.json").write_text("{not json")
    second = SpoolWriter(store, spool, name="t-" + secrets.token_hex(4)).start()
    assert second.drain(10)
    second.close()
    assert store.get_bytes("good") == b"1"
    assert sorted(p.name for p in (spool / "quarantine").iterdir()) == sorted([record.name, "garbage.json"])


def test_pending_key_is_never_replaced_by_other_bytes(store: FileStore, tmp_path: Path) -> None:
    name = "t-" + secrets.token_hex(4)
    writer = SpoolWriter(store, tmp_path / "spool", name=name)
    writer.write("asr/a/20260101T000000Z/part-000000.jsonl", b"session one")
    with pytest.raises(KeyConflict, match="nothing was replaced"):
        writer.write("asr/a/20260101T000000Z/part-000000.jsonl", b"session two")
    assert _metric("senseops_spool_conflicts_total", name) == 1
    writer.start()
    assert writer.drain(10)
    writer.close()
    assert store.get_bytes("asr/a/20260101T000000Z/part-000000.jsonl") == b"session one"


def test_key_already_in_the_store_with_other_bytes_is_quarantined_not_overwritten(
    store: FileStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = "t-" + secrets.token_hex(4)
    store.put("raw/a/20260101T000000Z/s1.wav", b"first writer")
    writer = SpoolWriter(store, tmp_path / "spool", name=name, max_backoff_s=0.2)
    writer.write("raw/a/20260101T000000Z/s1.wav", b"second writer")
    with caplog.at_level(logging.ERROR, logger="senseops.storage.spool"):
        writer.start()
        assert writer.drain(10)  # the conflict is settled (quarantined), not retried forever
    writer.close()
    assert store.get_bytes("raw/a/20260101T000000Z/s1.wav") == b"first writer"
    kept = [p for p in (tmp_path / "spool" / "quarantine").iterdir() if p.suffix == ".data"]
    assert [p.read_bytes() for p in kept] == [b"second writer"]
    assert _metric("senseops_spool_conflicts_total", name) == 1
    assert any("already exists with other bytes" in r.getMessage() for r in caplog.records)
