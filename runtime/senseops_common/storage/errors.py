"""The storage error hierarchy: what callers catch instead of SDK exceptions.

    StorageError                 base class; ``uri`` names the object or location involved
    ├── NotFound                 object, prefix or bucket does not exist
    ├── AccessDenied             credentials missing, wrong or not allowed to do this
    ├── Unavailable              server down, 5xx, throttled, connection reset or timed out (transient:
    │                            the only class that is retried)
    ├── ChecksumMismatch         bytes read back do not match the sha256 recorded at write time
    ├── InvalidURI               a URI that is not ``cos://bucket-appid/key``, ``s3://bucket/key`` or
    │                            ``file:///path`` (or an unsafe key such as one with ``..``)
    ├── Unsupported              the backend cannot do this (e.g. presigned URLs for ``file://``)
    ├── SpoolFull                the no-loss spool is at its byte or file bound; nothing was written
    └── KeyConflict              the spool already holds (or the store already has) this key with other bytes
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage module raises. The message always names the URI."""

    def __init__(self, message: str, uri: str = "") -> None:
        super().__init__(message)
        self.uri = uri


class NotFound(StorageError):
    """The object (or the bucket / directory holding it) does not exist."""


class AccessDenied(StorageError):
    """The store refused the credentials or the operation."""


class Unavailable(StorageError):
    """A transient failure: the store could not be reached, timed out, or answered 5xx / throttling."""


class ChecksumMismatch(StorageError):
    """Bytes read back do not hash to the sha256 recorded when they were written."""


class InvalidURI(StorageError):
    """The URI (or key) is malformed or unsafe; the message says what to change."""


class Unsupported(StorageError):
    """The backend does not support this operation."""


class SpoolFull(StorageError):
    """The spool reached its bound; the write was refused (not dropped) so the caller can react."""


class KeyConflict(StorageError):
    """A write-once key already holds different bytes; nothing was replaced (keys must be unique)."""
