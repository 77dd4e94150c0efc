"""Object storage for SenseOps: ``cos://``, ``s3://`` and ``file://`` behind one small API.

    store = open_store("s3://recordings/")          # config from env / mounted Secret files
    store.put("raw/a1/20260101T000000Z/s1.wav", b"...")
    info = store.stat("raw/a1/20260101T000000Z/s1.wav")   # size + sha256
    result = verify_object("cos://models-1250000000/models/sv/v3/", expected_sha256)

See README.md in this package for the error hierarchy, retries, the spool and the key layout.
"""

from senseops_common.storage.base import ObjectInfo, Store, StoreBase, sha256_file
from senseops_common.storage.config import StoreConfig
from senseops_common.storage.errors import (
    AccessDenied,
    ChecksumMismatch,
    InvalidURI,
    KeyConflict,
    NotFound,
    SpoolFull,
    StorageError,
    Unavailable,
    Unsupported,
)
from senseops_common.storage.factory import (
    STORE_URI_ENV,
    default_store_uri,
    open_default_store,
    open_store,
    resolve,
)
from senseops_common.storage.uri import ObjectURI, parse_uri
from senseops_common.storage.verify import (
    MANIFEST_NAME,
    VerifyResult,
    local_directory_manifest,
    manifest_digest,
    manifest_text,
    prefix_digest,
    verify_object,
)

__all__ = [
    "MANIFEST_NAME",
    "STORE_URI_ENV",
    "AccessDenied",
    "ChecksumMismatch",
    "InvalidURI",
    "KeyConflict",
    "NotFound",
    "ObjectInfo",
    "ObjectURI",
    "SpoolFull",
    "StorageError",
    "Store",
    "StoreBase",
    "StoreConfig",
    "Unavailable",
    "Unsupported",
    "VerifyResult",
    "default_store_uri",
    "local_directory_manifest",
    "manifest_digest",
    "manifest_text",
    "open_default_store",
    "open_store",
    "parse_uri",
    "prefix_digest",
    "resolve",
    "sha256_file",
    "verify_object",
]
