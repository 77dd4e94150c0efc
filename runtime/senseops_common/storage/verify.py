"""Artifact verification: does the object (or directory of objects) at a URI have the expected digest?

Single object
    The digest is the sha256 of the object's bytes. By default the sha256 recorded in the object's
    metadata at write time is compared (cheap: one HEAD); objects written by other tools (no recorded
    sha256) and ``deep=True`` calls stream the bytes and hash them.

Directory artifact (a prefix, e.g. ``models/{name}/{version}/``)
    The digest is the sha256 of its *manifest*: one line per object below the prefix, sorted by the
    relative path's UTF-8 bytes, in ``sha256sum`` format::

        <sha256 hex>  <relative/path>\\n

    An object named ``MANIFEST.sha256`` directly below the prefix is not part of the digest (the
    packager may upload the manifest text there, and ``sha256sum -c MANIFEST.sha256`` then checks a
    downloaded copy). The size of a directory artifact is the sum of its objects' sizes (manifest
    excluded). :func:`local_directory_manifest` computes the same for a local directory, so the
    trainer's package stage and the runtime's model loader agree with the operator.

A URI names a directory when it ends with ``/``, or when no object has exactly that key but objects
exist below ``key + "/"``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from senseops_common.storage.base import StoreBase, sha256_file
from senseops_common.storage.config import StoreConfig
from senseops_common.storage.errors import (
    AccessDenied,
    InvalidURI,
    NotFound,
    StorageError,
    Unavailable,
)
from senseops_common.storage.factory import resolve

MANIFEST_NAME = "MANIFEST.sha256"


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_object`. ``reason`` is CamelCase, fit for a Kubernetes condition:
    Verified, NotFound, DigestMismatch, SizeMismatch, StoreUnavailable, AccessDenied, InvalidURI,
    StoreError."""

    ok: bool
    reason: str
    message: str
    size: int | None = None
    sha256: str | None = None


def manifest_text(entries: Iterable[tuple[str, str]]) -> str:
    """The manifest for ``(relative_path, sha256)`` pairs: sorted, ``sha256sum`` format."""
    lines = []
    for rel, digest in sorted(entries, key=lambda e: e[0].encode()):
        if "\n" in rel or "\r" in rel:
            raise ValueError(f"artifact path {rel!r} contains a line break; it cannot be in a manifest")
        lines.append(f"{digest}  {rel}\n")
    return "".join(lines)


def manifest_digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 of :func:`manifest_text` — the digest of a directory artifact."""
    return hashlib.sha256(manifest_text(entries).encode()).hexdigest()


def local_directory_manifest(path: str | os.PathLike[str]) -> tuple[str, str, int]:
    """(manifest text, directory digest, total size) of the files below a local directory."""
    root = Path(path)
    entries: list[tuple[str, str]] = []
    total = 0
    for file in root.rglob("*"):
        if not file.is_file():
            continue
        rel = file.relative_to(root).as_posix()
        if rel == MANIFEST_NAME:
            continue
        digest, size = sha256_file(file)
        entries.append((rel, digest))
        total += size
    text = manifest_text(entries)
    return text, hashlib.sha256(text.encode()).hexdigest(), total


def _object_digest(store: StoreBase, key: str, deep: bool) -> tuple[str, int]:
    info = store.stat(key)
    if info.sha256 and not deep:
        return info.sha256, info.size
    digest = hashlib.sha256()
    size = 0
    for chunk in store.open_stream(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def prefix_digest(store: StoreBase, prefix: str, deep: bool = False) -> tuple[str, int, int]:
    """(directory digest, total size, object count) of the objects below ``prefix`` in ``store``."""
    entries: list[tuple[str, str]] = []
    total = 0
    for info in store.list(prefix):
        rel = info.key[len(prefix) :]
        if rel == MANIFEST_NAME:
            continue
        digest, size = _object_digest(store, info.key, deep)
        entries.append((rel, digest))
        total += size
    return manifest_digest(entries), total, len(entries)


def verify_object(
    uri: str,
    expected_sha256: str,
    expected_size: int | None = None,
    *,
    config: StoreConfig | None = None,
    deep: bool = False,
) -> VerifyResult:
    """Check that ``uri`` exists and has ``expected_sha256`` (and ``expected_size`` if given).

    Never raises for store problems: they come back as ``ok=False`` with a reason, so a controller can
    put the result straight into a status condition."""
    expected = expected_sha256.strip().lower().removeprefix("sha256:")
    try:
        store, key = resolve(uri, config)
        if key.endswith("/") or key == "":
            digest, size, count = prefix_digest(store, key, deep)
        else:
            try:
                digest, size = _object_digest(store, key, deep)
                count = 1
            except NotFound:
                digest, size, count = prefix_digest(store, key + "/", deep)
        if count == 0:
            return VerifyResult(False, "NotFound", f"{uri}: no such object or directory")
    except NotFound as exc:
        return VerifyResult(False, "NotFound", str(exc))
    except AccessDenied as exc:
        return VerifyResult(False, "AccessDenied", str(exc))
    except Unavailable as exc:
        return VerifyResult(False, "StoreUnavailable", str(exc))
    except InvalidURI as exc:
        return VerifyResult(False, "InvalidURI", str(exc))
    except StorageError as exc:
        return VerifyResult(False, "StoreError", str(exc))
    if expected_size is not None and size != expected_size:
        return VerifyResult(
            False, "SizeMismatch", f"{uri}: size is {size} bytes, expected {expected_size}", size, digest
        )
    if digest != expected:
        return VerifyResult(
            False, "DigestMismatch", f"{uri}: sha256 is {digest}, expected {expected}", size, digest
        )
    return VerifyResult(True, "Verified", f"{uri}: {size} bytes, sha256 {digest}", size, digest)
