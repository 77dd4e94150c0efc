"""Fault test for the no-loss spool against a real MinIO (its own instance, so the outage does not
disturb other tests): while 1,000 segments are written, MinIO is stopped for more than 30 s, the
writing process is SIGKILLed and restarted during the outage. Afterwards every segment is in the store
exactly once with the right sha256, and the spool is empty."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from senseops_common.storage import StoreConfig, open_store
from tests.servers.minio import MinioServer
from tests.storage.spool_fault_writer import segment_bytes, segment_key

REPO = Path(__file__).resolve().parents[2]
COUNT = 1000
OUTAGE_S = 31.0


def _acked(progress: Path) -> int:
    return len(progress.read_text().split()) if progress.exists() else 0


def _wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _spawn(server: MinioServer, spool: Path, progress: Path, log: Path, delay: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, **server.store_env(),
           "PYTHONPATH": os.pathsep.join(["operator", "runtime", "trainer_image", "."])}
    handle = open(log, "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.spool_fault_writer", "--store", "s3://fault/",
         "--spool", str(spool), "--progress", str(progress), "--count", str(COUNT), "--delay", str(delay)],
        cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
    )
    handle.close()
    return proc


@pytest.mark.slow
def test_spool_loses_nothing_through_outage_and_sigkill(tmp_path: Path) -> None:
    server = MinioServer(tmp_path / "minio-data").start()
    writer: subprocess.Popen[bytes] | None = None
    try:
        server.create_bucket("fault")
        spool, progress, log = tmp_path / "spool", tmp_path / "progress.txt", tmp_path / "writer.log"
        writer = _spawn(server, spool, progress, log, delay=0.02)
        _wait_for(lambda: _acked(progress) >= 150, 60, "150 acknowledged segments")

        server.stop()
        outage_started = time.monotonic()
        _wait_for(lambda: _acked(progress) >= 400, 60, "400 acknowledged segments during the outage")
        writer.kill()  # SIGKILL: no cleanup, no flush of the upload queue
        writer.wait()
        assert writer.returncode == -9
        pending = list((spool / "entries").glob("*.json"))
        assert len(pending) >= 200, "acknowledged segments must be waiting in the spool"

        writer = _spawn(server, spool, progress, log, delay=0.0)
        remaining = OUTAGE_S - (time.monotonic() - outage_started)
        time.sleep(max(0.0, remaining))
        assert writer.poll() is None, "the writer must still be waiting for the store"
        server.start()
        assert time.monotonic() - outage_started >= 30.0

        writer.wait(timeout=300)
        assert writer.returncode == 0, log.read_text()[-3000:]
        writer = None

        store = open_store("s3://fault/", StoreConfig.from_env(server.store_env()))
        listed = list(store.list())
        keys = [info.key for info in listed]
        assert len(keys) == len(set(keys)) == COUNT
        assert set(keys) == {segment_key(n) for n in range(COUNT)}
        for n in range(COUNT):
            expected = hashlib.sha256(segment_bytes(n)).hexdigest()
            assert store.stat(segment_key(n)).sha256 == expected
            assert hashlib.sha256(store.get_bytes(segment_key(n))).hexdigest() == expected
        assert list((spool / "entries").iterdir()) == []
        text = log.read_text()
        assert "resuming at segment" in text and "entries pending in the spool" in text
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        server.stop()
