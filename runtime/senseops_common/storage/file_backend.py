"""``file://`` backend: a local directory as an object store (the embedded default and the demo).

Writes are atomic: data goes to a hidden temp file in the target directory, is fsynced and renamed over
the key, and the directory is fsynced. The sha256 and size live in a sidecar ``.<name>.smeta.json``
next to the data, together with the data file's inode and mtime; a sidecar that does not match the
file (a crash between the two renames, or a file changed by hand) is ignored and the digest recomputed.
Hidden names ending in ``.smeta.json`` or containing ``.tmp-`` are internal and never listed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from senseops_common.storage.base import ListPage, Payload, StoreBase, sha256_file
from senseops_common.storage.config import CHUNK_SIZE, StoreConfig
from senseops_common.storage.errors import (
    AccessDenied,
    InvalidURI,
    NotFound,
    StorageError,
    Unsupported,
)

_SIDECAR_SUFFIX = ".smeta.json"
_TMP_MARK = ".tmp-"


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}{_SIDECAR_SUFFIX}")


def _is_internal(name: str) -> bool:
    return name.startswith(".") and (name.endswith(_SIDECAR_SUFFIX) or _TMP_MARK in name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create ``path`` atomically: temp file in the same dir, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class FileStore(StoreBase):
    """Objects are files below ``root``; keys map to relative paths."""

    def __init__(self, root: Path, root_uri: str, config: StoreConfig) -> None:
        super().__init__(root_uri, "", config)
        self.root = root

    def _path(self, full: str) -> Path:
        path = self.root / full
        # Keys are already free of '..'; this also refuses symlinks that lead out of the root.
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
            raise InvalidURI(f"{self.uri_for(full)} resolves outside the store root {self.root}")
        if _is_internal(path.name):
            raise InvalidURI(f"{self.uri_for(full)} uses a name reserved for store metadata")
        return path

    def _translate(self, exc: Exception, uri: str) -> StorageError:
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            return NotFound(f"{uri}: no such object", uri)
        if isinstance(exc, PermissionError):
            return AccessDenied(f"{uri}: permission denied ({exc.strerror})", uri)
        if isinstance(exc, IsADirectoryError):
            return NotFound(f"{uri}: is a directory, not an object", uri)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return StorageError(f"{uri}: no space left on device", uri)
        return StorageError(f"{uri}: {type(exc).__name__}: {exc}", uri)

    def _upload(self, full: str, payload: Payload) -> None:
        path = self._path(full)

        def write_data(handle: BinaryIO) -> None:
            if payload.data is not None:
                handle.write(payload.data)
            else:
                assert payload.path is not None
                with open(payload.path, "rb") as src:
                    shutil.copyfileobj(src, handle, CHUNK_SIZE)

        atomic_write(path, write_data)
        st = path.stat()
        meta = {"sha256": payload.sha256, "size": payload.size, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}
        body = json.dumps(meta).encode()
        atomic_write(_sidecar(path), lambda handle: handle.write(body))

    def _read(self, full: str) -> Iterator[bytes]:
        # Opened now (not inside the generator) so a missing file fails before iteration starts.
        handle = open(self._path(full), "rb")  # noqa: SIM115 - closed by the generator

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK_SIZE):
                    yield chunk

        return chunks()

    def _stat(self, full: str) -> tuple[int, str | None]:
        path = self._path(full)
        st = path.stat()
        if not path.is_file():
            raise NotFound(f"{self.uri_for(full)}: is a directory, not an object", self.uri_for(full))
        digest = self._sidecar_digest(path, st)
        if digest is None:
            digest, _ = sha256_file(path)
        return st.st_size, digest

    @staticmethod
    def _sidecar_digest(path: Path, st: os.stat_result) -> str | None:
        try:
            meta = json.loads(_sidecar(path).read_text())
        except (OSError, ValueError):
            return None
        if (meta.get("ino"), meta.get("size"), meta.get("mtime_ns")) != (st.st_ino, st.st_size, st.st_mtime_ns):
            return None  # stale: the data file was replaced after the sidecar was written
        value = meta.get("sha256")
        return value if isinstance(value, str) else None

    def _all_keys(self, full_prefix: str) -> list[str]:
        # Walk only the deepest directory the prefix names; S3 semantics: a prefix is a string prefix.
        base_dir = full_prefix.rsplit("/", 1)[0] if "/" in full_prefix else ""
        start = self.root / base_dir if base_dir else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if _is_internal(name):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(full_prefix):
                    keys.append(key)
        keys.sort(key=lambda k: k.encode())  # S3 lists in UTF-8 byte order
        return keys

    def _list_page(self, full_prefix: str, token: str | None, page_size: int) -> ListPage:
        keys = [k for k in self._all_keys(full_prefix) if token is None or k.encode() > token.encode()]
        page: list[tuple[str, int, str | None]] = []
        for key in keys[:page_size]:
            try:
                size, digest = self._stat(key)
            except (FileNotFoundError, NotFound):
                continue  # deleted while listing
            page.append((key, size, digest))
        next_token = keys[page_size - 1] if len(keys) > page_size else None
        return page, next_token

    def _delete(self, full: str) -> None:
        path = self._path(full)
        _sidecar(path).unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def _presign(self, full: str, expires_s: int) -> str:
        raise Unsupported(f"{self.uri_for(full)}: file:// stores have no presigned URLs", self.uri_for(full))
