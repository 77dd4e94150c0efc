"""``open_store``: the one switch from a URI to a backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from senseops_common.storage.base import StoreBase
from senseops_common.storage.config import StoreConfig
from senseops_common.storage.uri import ObjectURI, parse_uri


def _build(parsed: ObjectURI, prefix: str, config: StoreConfig) -> StoreBase:
    root_uri = str(ObjectURI(parsed.scheme, parsed.bucket, prefix))
    if parsed.scheme == "file":
        from senseops_common.storage.file_backend import FileStore

        return FileStore(Path("/" + prefix), root_uri, config)
    if parsed.scheme == "s3":
        from senseops_common.storage.s3_backend import S3Store

        return S3Store(parsed.bucket, prefix, root_uri, config)
    from senseops_common.storage.cos_backend import CosStore

    return CosStore(parsed.bucket, prefix, root_uri, config)


def open_store(uri: str, config: StoreConfig | None = None) -> StoreBase:
    """Open the store rooted at ``uri`` — a bucket (``s3://b``), a prefix in one (``cos://b-125/p/``)
    or a local directory (``file:///var/lib/senseops/store``). Keys passed to the store are relative to
    that root. ``config`` defaults to :meth:`StoreConfig.from_env`."""
    parsed = parse_uri(uri)
    prefix = parsed.key if parsed.is_prefix else parsed.key + "/"
    return _build(parsed, prefix, config or StoreConfig.from_env())


def resolve(uri: str, config: StoreConfig | None = None) -> tuple[StoreBase, str]:
    """Split an object URI into (store for its bucket — or ``/`` for ``file://`` — and the key)."""
    parsed = parse_uri(uri)
    return _build(parsed, "", config or StoreConfig.from_env()), parsed.key


STORE_URI_ENV = "SENSEOPS_STORE_URI"


def default_store_uri(env: Mapping[str, str] | None = None) -> str:
    """``$SENSEOPS_STORE_URI``, else a local directory (``file://~/.local/share/senseops/store``): with no
    cloud account configured everything (demo included) runs on the embedded ``file://`` backend."""
    env = os.environ if env is None else env
    if env.get(STORE_URI_ENV):
        return env[STORE_URI_ENV]
    home = env.get("HOME") or str(Path.home())
    return f"file://{home}/.local/share/senseops/store/"


def open_default_store(config: StoreConfig | None = None) -> StoreBase:
    """Open the store named by :func:`default_store_uri`."""
    return open_store(default_store_uri(), config)
