"""Which stored audio ``POST /api/transcribe {"file_path": ...}`` may read, and reading it.

Only ``cos://`` and ``s3://`` URIs under a configured prefix are read. Paths on the server's disk,
``file://`` URIs and http(s) or any other URL are refused before anything is opened (no local file
disclosure, no SSRF: the server never connects to an address taken from a request).
"""

from __future__ import annotations

from dataclasses import dataclass

from senseops_common.storage import (
    AccessDenied,
    InvalidURI,
    NotFound,
    StorageError,
    parse_uri,
    resolve,
)
from senseops_runtime.audio_input import AudioInputError


@dataclass(frozen=True)
class SourceRefusal:
    """Why a ``file_path`` is refused; ``status`` is the HTTP code."""

    status: int
    message: str


def check_audio_source(file_path: object, allowed_prefixes: list[str]) -> str | SourceRefusal:
    """Return the URI if the server may read it, else the refusal. Pure."""
    if not isinstance(file_path, str) or not file_path.strip():
        return SourceRefusal(422, "file_path must be a non-empty string")
    uri = file_path.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https", "ftp", "gs", "data") or uri.lower().startswith(("http:", "https:")):
        return SourceRefusal(
            400,
            "URLs are not fetched by the server; upload the file or pass a cos:// or s3:// URI of stored audio",
        )
    if scheme not in ("cos", "s3"):
        return SourceRefusal(
            400,
            "file_path must be a cos:// or s3:// URI of stored audio; paths on the server are not accepted",
        )
    try:
        parsed = parse_uri(uri)
    except InvalidURI as exc:
        return SourceRefusal(400, str(exc))
    if parsed.is_prefix:
        return SourceRefusal(400, "file_path names a folder; give the URI of one audio object")
    if not allowed_prefixes:
        return SourceRefusal(403, "transcribing stored audio is not enabled on this server")
    normalised = str(parsed)
    if not any(normalised.startswith(prefix if prefix.endswith("/") else prefix + "/") for prefix in allowed_prefixes):
        return SourceRefusal(403, "file_path is outside the storage locations this server may read")
    return normalised


def read_stored_audio(uri: str, max_bytes: int) -> bytes:
    """Fetch an allowed URI (blocking; call from a thread). Errors become :class:`AudioInputError`."""
    try:
        store, key = resolve(uri)
        info = store.stat(key)
        if info.size > max_bytes:
            raise AudioInputError(413, f"stored audio is {info.size} bytes; the limit is {max_bytes} bytes")
        return store.get_bytes(key)
    except NotFound as exc:
        raise AudioInputError(404, f"no stored audio at {uri}") from exc
    except AccessDenied as exc:
        raise AudioInputError(403, f"the server is not allowed to read {uri}") from exc
    except StorageError as exc:
        raise AudioInputError(503, f"object storage unavailable while reading {uri}; retry later") from exc
