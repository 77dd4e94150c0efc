"""The ``Store`` protocol and the behaviour every backend shares (hashing, retries, multipart, verify).

A backend implements a handful of primitives on *full* keys (``_upload``, ``_read``, ``_stat``,
``_list_page``, ``_delete``, ``_presign``); :class:`StoreBase` turns them into the public operations on
keys relative to the store's root URI, wraps every call in the retry policy, and checks sha256 on read.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar, runtime_checkable

from senseops_common.storage.config import CHUNK_SIZE, DEFAULT_PRESIGN_EXPIRES_S, StoreConfig
from senseops_common.storage.errors import ChecksumMismatch, StorageError, Unavailable
from senseops_common.storage.retry import call_with_retries
from senseops_common.storage.uri import check_key

log = logging.getLogger("senseops.storage")
T = TypeVar("T")

# User-metadata name under which every backend keeps the object's sha256 (hex).
SHA256_META = "sha256"

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]
# One page of a listing: (full key, size, sha256 or None) entries and the token of the next page.
ListPage = tuple[list[tuple[str, int, str | None]], str | None]


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat``/``list``/``put`` report. ``sha256`` is None only for objects written by other tools."""

    uri: str
    key: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Payload:
    """Bytes to upload, held in memory or in a local file, with their size and sha256 known up front."""

    size: int
    sha256: str
    data: bytes | None = None
    path: Path | None = None

    def read_range(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` (used for multipart parts and retries)."""
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.path is not None
        with open(self.path, "rb") as handle:
            return os.pread(handle.fileno(), length, offset)

    def open(self) -> IO[bytes]:
        """A fresh readable stream over the whole payload (each retry gets a new one)."""
        import io

        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")


@runtime_checkable
class Store(Protocol):
    """One bucket (or local directory) addressed by keys relative to ``root_uri``. Every backend is a
    :class:`StoreBase`; code that only uses a store should accept this Protocol."""

    root_uri: str

    def uri_for(self, key: str) -> str:
        """The full URI of ``key``."""
        ...

    def put(self, key: str, source: Source) -> ObjectInfo:
        """Store bytes, a local file (path) or a binary stream under ``key``; record size and sha256."""
        ...

    def open_stream(self, key: str) -> Iterator[bytes]:
        """Yield the object's bytes in chunks; raise ChecksumMismatch at the end if they are corrupt."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole (small) object, checksum-verified."""
        ...

    def download(
        self, key: str, dest: str | os.PathLike[str], progress: Callable[[int], None] | None = None
    ) -> ObjectInfo:
        """Stream the object into a local file atomically, checksum-verified; ``progress(bytes_so_far)``
        after each chunk (back to 0 when a broken transfer restarts)."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size and sha256 of ``key``; raise NotFound if absent."""
        ...

    def exists(self, key: str) -> bool:
        """True if ``key`` exists."""
        ...

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, fetched page by page."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing object is not an error (idempotent like S3)."""
        ...

    def presign_get(self, key: str, expires_s: int = DEFAULT_PRESIGN_EXPIRES_S) -> str:
        """A time-limited HTTP GET URL for ``key``; raise Unsupported where the backend has none."""
        ...


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return (sha256 hex, size) of a local file, reading it in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class StoreBase:
    """Shared public operations; subclasses implement the primitives named in the module docstring."""

    root_uri: str

    def __init__(self, root_uri: str, prefix: str, config: StoreConfig) -> None:
        self.root_uri = root_uri if root_uri.endswith("/") else root_uri + "/"
        self.prefix = prefix  # '' or ends with '/'
        self.config = config

    # ---- helpers ------------------------------------------------------------------------------------
    def uri_for(self, key: str) -> str:
        """The full URI of ``key`` in this store."""
        return self.root_uri + key

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key, self.uri_for(key))

    def _retrying(self, uri: str, action: Callable[[], T]) -> T:
        return call_with_retries(
            lambda: self._translating(uri, action),
            max_attempts=self.config.max_attempts,
            deadline_s=self.config.deadline_s,
            what=uri,
        )

    def _translating(self, uri: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except StorageError:
            raise
        except Exception as exc:  # SDK exceptions never escape: map them to our hierarchy
            raise self._translate(exc, uri) from exc

    def _translate(self, exc: Exception, uri: str) -> StorageError:
        raise NotImplementedError

    # ---- public operations ------------------------------------------------------------------------
    def put(self, key: str, source: Source) -> ObjectInfo:
        """Store ``source`` (bytes, a local file path, or a binary stream) under ``key``."""
        full = self._full(key)
        uri = self.uri_for(key)
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            payload = Payload(len(data), hashlib.sha256(data).hexdigest(), data=data)
            return self._upload_payload(full, key, uri, payload)
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            try:
                digest, size = sha256_file(path)
            except OSError as exc:  # a bad local source is the caller's error, not the store's
                raise StorageError(f"{uri}: cannot read local source file {path} ({exc.strerror})", uri) from exc
            return self._upload_payload(full, key, uri, Payload(size, digest, path=path))
        # A stream is read once: copy it to a local temp file (hashing as we go) so the upload can be
        # retried and split into parts, and so the sha256 is known before the object is created.
        with tempfile.NamedTemporaryFile(prefix="senseops-put-") as spill:
            digest_obj = hashlib.sha256()
            size = 0
            while chunk := source.read(CHUNK_SIZE):
                digest_obj.update(chunk)
                spill.write(chunk)
                size += len(chunk)
            spill.flush()
            payload = Payload(size, digest_obj.hexdigest(), path=Path(spill.name))
            return self._upload_payload(full, key, uri, payload)

    def _upload_payload(self, full: str, key: str, uri: str, payload: Payload) -> ObjectInfo:
        if payload.size >= self.config.multipart_threshold and self._supports_multipart():
            self._multipart_upload(full, uri, payload)
        else:
            self._retrying(uri, lambda: self._upload(full, payload))
        log.debug("stored %s (%d bytes)", uri, payload.size)
        return ObjectInfo(uri=uri, key=key, size=payload.size, sha256=payload.sha256)

    def open_stream(self, key: str) -> Iterator[bytes]:
        """Yield the object's bytes in chunks and verify the sha256 after the last chunk."""
        full = self._full(key)
        uri = self.uri_for(key)
        info = self.stat(key)
        chunks = self._retrying(uri, lambda: self._read(full))
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(exc, uri) from exc
        if size != info.size or (info.sha256 and digest.hexdigest() != info.sha256):
            raise ChecksumMismatch(
                f"{uri}: read {size} bytes with sha256 {digest.hexdigest()}, "
                f"expected {info.size} bytes with sha256 {info.sha256}",
                uri,
            )

    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory (for small objects), checksum-verified."""
        return self._retrying_whole(key, lambda: b"".join(self.open_stream(key)))

    def download(
        self, key: str, dest: str | os.PathLike[str], progress: Callable[[int], None] | None = None
    ) -> ObjectInfo:
        """Stream the object to ``dest`` (temp file + rename, so ``dest`` is never half-written).

        ``progress(bytes_so_far)`` is called after each chunk; a transfer restarted after a break starts
        again from 0.
        """
        dest_path = Path(dest)
        dest_path.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> ObjectInfo:
            fd, tmp = tempfile.mkstemp(prefix=f".{dest_path.name}.", dir=dest_path.parent)
            received = 0
            try:
                with os.fdopen(fd, "wb") as handle:
                    for chunk in self.open_stream(key):
                        handle.write(chunk)
                        if progress is not None:
                            received += len(chunk)
                            progress(received)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, dest_path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return self.stat(key)

        return self._retrying_whole(key, attempt)

    def _retrying_whole(self, key: str, action: Callable[[], T]) -> T:
        # A transfer that breaks midway (server restarts) is restarted from the beginning.
        return call_with_retries(
            action, max_attempts=self.config.max_attempts, deadline_s=self.config.deadline_s,
            what=self.uri_for(key),
        )

    def stat(self, key: str) -> ObjectInfo:
        """Size and sha256 of ``key`` (NotFound if absent)."""
        full = self._full(key)
        uri = self.uri_for(key)
        size, digest = self._retrying(uri, lambda: self._stat(full))
        return ObjectInfo(uri=uri, key=key, size=size, sha256=digest)

    def exists(self, key: str) -> bool:
        """True if ``key`` exists."""
        from senseops_common.storage.errors import NotFound

        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order, one backend page at a time."""
        full_prefix = self.prefix + check_key(prefix, self.uri_for(prefix)) if prefix else self.prefix
        token: str | None = None
        while True:
            fetch = functools.partial(self._list_page, full_prefix, token, page_size)
            page, token = self._retrying(self.uri_for(prefix), fetch)
            for full_key, size, digest in page:
                key = full_key[len(self.prefix) :]
                yield ObjectInfo(uri=self.uri_for(key), key=key, size=size, sha256=digest)
            if token is None:
                return

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error if it is already gone)."""
        full = self._full(key)
        self._retrying(self.uri_for(key), lambda: self._delete(full))

    def presign_get(self, key: str, expires_s: int = DEFAULT_PRESIGN_EXPIRES_S) -> str:
        """A presigned GET URL valid for ``expires_s`` seconds."""
        full = self._full(key)
        return self._translating(self.uri_for(key), lambda: self._presign(full, expires_s))

    # ---- multipart (cloud backends) ---------------------------------------------------------------
    def _supports_multipart(self) -> bool:
        return False

    def _multipart_upload(self, full: str, uri: str, payload: Payload) -> None:
        part_size = self.config.part_size
        upload_id = self._retrying(uri, lambda: self._mpu_create(full, payload.sha256))
        offsets = list(range(0, payload.size, part_size))

        def send(number_offset: tuple[int, int]) -> tuple[int, str]:
            number, offset = number_offset
            # Read inside the retried call: a retry re-reads the part instead of keeping it pinned.
            etag = self._retrying(
                uri, lambda: self._mpu_part(full, upload_id, number, payload.read_range(offset, part_size))
            )
            return number, etag

        try:
            with ThreadPoolExecutor(max_workers=self.config.part_concurrency) as pool:
                parts = list(pool.map(send, enumerate(offsets, start=1)))
            self._retrying(uri, lambda: self._mpu_complete(full, upload_id, parts))
        except BaseException:
            try:
                self._translating(uri, lambda: self._mpu_abort(full, upload_id))
            except StorageError as abort_error:  # the original error matters more
                log.warning("could not abort multipart upload of %s: %s", uri, abort_error)
            raise

    # ---- primitives a backend implements ---------------------------------------------------------
    def _upload(self, full: str, payload: Payload) -> None:
        raise NotImplementedError

    def _read(self, full: str) -> Iterator[bytes]:
        raise NotImplementedError

    def _stat(self, full: str) -> tuple[int, str | None]:
        raise NotImplementedError

    def _list_page(self, full_prefix: str, token: str | None, page_size: int) -> ListPage:
        raise NotImplementedError

    def _delete(self, full: str) -> None:
        raise NotImplementedError

    def _presign(self, full: str, expires_s: int) -> str:
        raise NotImplementedError

    def _mpu_create(self, full: str, sha256: str) -> str:
        raise NotImplementedError

    def _mpu_part(self, full: str, upload_id: str, number: int, data: bytes) -> str:
        raise NotImplementedError

    def _mpu_complete(self, full: str, upload_id: str, parts: builtins.list[tuple[int, str]]) -> None:
        raise NotImplementedError

    def _mpu_abort(self, full: str, upload_id: str) -> None:
        raise NotImplementedError


def unavailable(uri: str, exc: BaseException) -> Unavailable:
    """An Unavailable error naming ``uri`` and the underlying cause in one sentence."""
    return Unavailable(f"{uri}: store unavailable ({type(exc).__name__}: {exc})", uri)
