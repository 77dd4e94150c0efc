"""No-loss spooled writer: durable local write first, upload to the store in the background.

``SpoolWriter.write(key, data)`` returns only after the bytes and a small JSON record naming the key
are fsynced in the spool directory (file and directory), so an acknowledged write survives a crash,
a SIGKILL or a store outage. Background threads upload entries with retries (tenacity, jittered
exponential backoff, no attempt limit: the data must not be dropped) and delete an entry only after
the store reports the object with the entry's sha256. :meth:`SpoolWriter.start` rescans the spool, so
entries left by a killed process are uploaded by the next one.

No duplicates: the object key is given by the caller and is deterministic (see ``layout``), the spool
entry id is derived from the key, and an upload that already happened (crash between upload and
delete) is detected by comparing the stored sha256 and skipped — so a retried upload never writes the
same bytes twice.

Write-once: spooled keys are never silently replaced by different content. Writing a key that is
pending with other bytes raises :class:`KeyConflict` (same bytes: a no-op). An entry whose key already
exists in the store with other bytes (or with no recorded sha256) is not uploaded: it is moved to
``quarantine/`` with one error line and counted in ``senseops_spool_conflicts_total`` — two writers
chose the same key, which is a bug to fix, and neither copy is lost.

Bounded: ``max_bytes`` / ``max_files``. When a write would exceed them the writer logs one clear
error line, raises :class:`SpoolFull` and counts the refusal in ``senseops_spool_rejected_total``;
nothing is silently dropped and nothing already acknowledged is evicted. Refusing (rather than
dropping the oldest) keeps the promise made to earlier writers; the caller decides what to do with
new data (e.g. keep transcribing but not record, and alert on the metric).

Layout on disk::

    <spool>/entries/<id>.json         {"key", "sha256", "size", "data", "created"} — the commit record
    <spool>/entries/<id>.<gen>.data   the bytes (a new generation per write of the same key)
    <spool>/tmp/                      partial writes; cleared at start
    <spool>/quarantine/               unusable records and key conflicts (kept for a human, never deleted)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_when_event_set,
    wait_exponential_jitter,
)

from senseops_common.storage.base import StoreBase
from senseops_common.storage.errors import KeyConflict, NotFound, SpoolFull, StorageError
from senseops_common.storage.uri import check_key

log = logging.getLogger("senseops.storage.spool")

DEFAULT_MAX_BYTES = 1024**3
DEFAULT_MAX_FILES = 100_000
DEFAULT_WORKERS = 2
UPLOAD_MAX_BACKOFF_S = 5.0

SPOOL_PENDING_BYTES = Gauge("senseops_spool_pending_bytes", "Bytes waiting in the spool", ["spool"])
SPOOL_PENDING_FILES = Gauge("senseops_spool_pending_files", "Entries waiting in the spool", ["spool"])
SPOOL_FULL = Gauge("senseops_spool_full", "1 while the spool refuses writes because it is full", ["spool"])
SPOOL_UPLOADED = Counter("senseops_spool_uploaded_total", "Entries uploaded and removed", ["spool"])
SPOOL_UPLOAD_ERRORS = Counter("senseops_spool_upload_errors_total", "Failed upload attempts", ["spool"])
SPOOL_REJECTED = Counter("senseops_spool_rejected_total", "Writes refused because the spool was full", ["spool"])
SPOOL_CONFLICTS = Counter(
    "senseops_spool_conflicts_total", "Entries not uploaded because the key already held other bytes", ["spool"]
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class SpoolReceipt:
    """Proof that ``key`` is durably spooled (returned by :meth:`SpoolWriter.write`)."""

    key: str
    sha256: str
    size: int


class SpoolWriter:
    """Durable write-behind to one store. Thread-safe; one instance per spool directory and process."""

    def __init__(
        self,
        store: StoreBase,
        spool_dir: str | os.PathLike[str],
        *,
        name: str = "default",
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        workers: int = DEFAULT_WORKERS,
        max_backoff_s: float = UPLOAD_MAX_BACKOFF_S,
    ) -> None:
        self.store = store
        self.name = name
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.workers = workers
        self.max_backoff_s = max_backoff_s
        self.entries_dir = Path(spool_dir) / "entries"
        self.tmp_dir = Path(spool_dir) / "tmp"
        self.quarantine_dir = Path(spool_dir) / "quarantine"
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self._pending: dict[str, dict[str, Any]] = {}  # id -> commit record
        self._queue: queue.Queue[str] = queue.Queue()
        self._queued: set[str] = set()
        self._bytes = 0
        self._full = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._uploading: set[str] = set()  # ids a thread is uploading right now
        self._rescan()

    # ---- state ------------------------------------------------------------------------------------
    def _rescan(self) -> None:
        """Load committed entries; delete partial writes and data files no record points to."""
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        referenced: set[str] = set()
        records = []
        for record_path in self.entries_dir.glob("*.json"):
            try:
                record = json.loads(record_path.read_text())
                if not (self.entries_dir / record["data"]).is_file():
                    raise ValueError("its data file is missing")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # Cannot be uploaded; keep it out of the queue but never delete it silently.
                self.quarantine_dir.mkdir(exist_ok=True)
                os.replace(record_path, self.quarantine_dir / record_path.name)
                log.error("spool %s: record %s is unusable (%s); moved to %s for inspection",
                          self.name, record_path.name, exc, self.quarantine_dir)
                continue
            records.append((record_path.stem, record))
            referenced.add(record["data"])
        for data_path in self.entries_dir.glob("*.data"):
            if data_path.name not in referenced:
                data_path.unlink(missing_ok=True)  # written but never committed: never acknowledged
        with self._lock:
            for entry_id, record in sorted(records, key=lambda r: r[1].get("created", 0)):
                self._pending[entry_id] = record
                self._bytes += int(record["size"])
                self._enqueue(entry_id)
            self._update_gauges()
        if records:
            log.info("spool %s: %d entries (%d bytes) from an earlier run queued for upload",
                     self.name, len(records), self._bytes)

    def _enqueue(self, entry_id: str) -> None:
        if entry_id not in self._queued:
            self._queued.add(entry_id)
            self._queue.put(entry_id)

    def _update_gauges(self) -> None:
        SPOOL_PENDING_BYTES.labels(self.name).set(self._bytes)
        SPOOL_PENDING_FILES.labels(self.name).set(len(self._pending))
        SPOOL_FULL.labels(self.name).set(1 if self._full else 0)

    @property
    def pending_files(self) -> int:
        """Entries not yet uploaded."""
        with self._lock:
            return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Bytes not yet uploaded."""
        with self._lock:
            return self._bytes

    def pending_keys(self, prefix: str = "") -> list[str]:
        """Keys spooled but not yet uploaded that start with ``prefix``, sorted."""
        with self._lock:
            return sorted(r["key"] for r in self._pending.values() if r["key"].startswith(prefix))

    # ---- writing ----------------------------------------------------------------------------------
    def write(self, key: str, data: bytes) -> SpoolReceipt:
        """Durably spool ``data`` for ``key``; return once it is on disk. Raise SpoolFull when bounded,
        KeyConflict when ``key`` is pending with other bytes (writing the same bytes again is a no-op)."""
        check_key(key, self.store.uri_for(key))
        if key.endswith("/") or not key:
            raise StorageError(f"{self.store.uri_for(key)}: a spooled object needs a key, not a prefix")
        entry_id = hashlib.sha256(key.encode()).hexdigest()[:40]
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            previous = self._pending.get(entry_id)
            if previous is not None:
                if previous["sha256"] == digest:
                    return SpoolReceipt(key, digest, len(data))
                SPOOL_CONFLICTS.labels(self.name).inc()
                raise KeyConflict(
                    f"{self.store.uri_for(key)}: spool {self.name} already holds this key with other bytes "
                    f"(sha256 {previous['sha256'][:12]}…, new {digest[:12]}…); nothing was replaced — "
                    "give each writer its own key",
                    self.store.uri_for(key),
                )
            new_bytes = self._bytes + len(data)
            new_files = len(self._pending) + 1
            if new_bytes > self.max_bytes or new_files > self.max_files:
                SPOOL_REJECTED.labels(self.name).inc()
                if not self._full:
                    self._full = True
                    log.error(
                        "spool %s is FULL (%d/%d bytes, %d/%d files): refusing new writes until uploads to "
                        "%s catch up — check that the store is reachable", self.name, self._bytes,
                        self.max_bytes, len(self._pending), self.max_files, self.store.root_uri,
                    )
                    self._update_gauges()
                raise SpoolFull(
                    f"{self.store.uri_for(key)}: spool {self.name} is full ({self._bytes} bytes, "
                    f"{len(self._pending)} files pending); write refused, nothing was stored",
                    self.store.uri_for(key),
                )
            data_name = f"{entry_id}.{uuid.uuid4().hex[:12]}.data"
            record = {"key": key, "sha256": digest, "size": len(data), "data": data_name, "created": time.time()}
            # Data first, then the commit record (atomic rename), then the directory: acknowledged
            # only when all three are on disk.
            tmp_data = self.tmp_dir / data_name
            _write_durably(tmp_data, data)
            os.replace(tmp_data, self.entries_dir / data_name)
            tmp_record = self.tmp_dir / f"{entry_id}.json"
            _write_durably(tmp_record, json.dumps(record).encode())
            os.replace(tmp_record, self.entries_dir / f"{entry_id}.json")
            _fsync_dir(self.entries_dir)
            self._pending[entry_id] = record
            self._bytes = new_bytes
            self._enqueue(entry_id)
            self._update_gauges()
        return SpoolReceipt(key, digest, len(data))

    # ---- uploading --------------------------------------------------------------------------------
    def start(self) -> SpoolWriter:
        """Start the upload threads (entries found at construction are already queued)."""
        self._stop.clear()
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"spool-{self.name}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                entry_id = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._lock:
                self._queued.discard(entry_id)
                record = self._pending.get(entry_id)
                if record is None:
                    continue
                self._uploading.add(entry_id)
            try:
                uploaded = self._upload_with_retries(record)
            except KeyConflict as exc:
                self._quarantine_conflict(entry_id, record, exc)
                uploaded = False
            except Exception:  # a bug or a local disk fault must not kill the uploader thread
                SPOOL_UPLOAD_ERRORS.labels(self.name).inc()
                log.exception("spool %s: unexpected error uploading %s; will retry", self.name, record["key"])
                self._stop.wait(self.max_backoff_s)
                uploaded = False
                with self._lock:
                    self._enqueue(entry_id)
            finally:
                with self._lock:
                    self._uploading.discard(entry_id)
            if uploaded:
                self._finish(entry_id, record)

    def _upload_with_retries(self, record: dict[str, Any]) -> bool:
        def attempt() -> None:
            try:
                self._upload_once(record)
            except KeyConflict:
                raise  # retrying cannot help; the caller quarantines the entry
            except StorageError as exc:
                SPOOL_UPLOAD_ERRORS.labels(self.name).inc()
                log.warning("spool %s: upload of %s failed, will retry: %s", self.name, record["key"], exc)
                raise

        retrying = Retrying(
            retry=retry_if_exception_type(StorageError) & retry_if_not_exception_type(KeyConflict),
            wait=wait_exponential_jitter(multiplier=0.5, max=self.max_backoff_s),
            stop=stop_when_event_set(self._stop),
            sleep=self._interruptible_sleep,
            reraise=True,
        )
        try:
            retrying(attempt)
        except KeyConflict:
            raise
        except StorageError:
            return False  # stopping: the entry stays on disk for the next start
        return True

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # wakes at once on close()

    def _upload_once(self, record: dict[str, Any]) -> None:
        key = record["key"]
        try:
            existing = self.store.stat(key)
        except NotFound:
            pass
        else:
            if existing.sha256 == record["sha256"] and existing.size == record["size"]:
                return  # already uploaded before a crash: do not write it twice
            raise KeyConflict(
                f"{existing.uri} already exists with other bytes (sha256 {existing.sha256}, spooled "
                f"{record['sha256']}); not replaced",
                existing.uri,
            )
        self.store.put(key, self.entries_dir / record["data"])
        stored = self.store.stat(key)
        if stored.sha256 != record["sha256"]:
            raise StorageError(f"{stored.uri}: stored sha256 {stored.sha256} != spooled {record['sha256']}")

    def _quarantine_conflict(self, entry_id: str, record: dict[str, Any], exc: KeyConflict) -> None:
        """Keep both copies: the store's stays, the spooled one moves to quarantine/ for a human."""
        SPOOL_CONFLICTS.labels(self.name).inc()
        with self._lock:
            self.quarantine_dir.mkdir(exist_ok=True)
            os.replace(self.entries_dir / record["data"], self.quarantine_dir / record["data"])
            os.replace(self.entries_dir / f"{entry_id}.json", self.quarantine_dir / f"{entry_id}.json")
            _fsync_dir(self.entries_dir)
            self._pending.pop(entry_id, None)
            self._bytes -= int(record["size"])
            self._update_gauges()
            self._lock.notify_all()
        log.error("spool %s: %s; the spooled copy is kept in %s", self.name, exc, self.quarantine_dir)

    def _finish(self, entry_id: str, record: dict[str, Any]) -> None:
        with self._lock:
            current = self._pending.get(entry_id)
            if current is None or current["data"] != record["data"]:
                return  # entries are write-once; nothing else to finish
            (self.entries_dir / f"{entry_id}.json").unlink(missing_ok=True)
            _fsync_dir(self.entries_dir)
            (self.entries_dir / record["data"]).unlink(missing_ok=True)
            del self._pending[entry_id]
            self._bytes -= int(record["size"])
            SPOOL_UPLOADED.labels(self.name).inc()
            if self._full and self._bytes <= self.max_bytes * 0.9 and len(self._pending) < self.max_files:
                self._full = False
                log.warning("spool %s accepts writes again (%d bytes pending)", self.name, self._bytes)
            self._update_gauges()
            self._lock.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until every entry is uploaded; return False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.5))
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the upload threads; pending entries stay on disk and are uploaded after the next start."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
