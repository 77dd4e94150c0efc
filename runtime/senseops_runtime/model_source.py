"""Model store URI → verified local model directory (downloaded once, cached on disk).

``MODEL_URI`` names a model *directory* artifact, as the trainer's package stage writes it:

* ``cos://bucket-1250000000/models/sensevoice-small/v3/`` or ``s3://bucket/models/…/`` — downloaded;
* ``file:///srv/models/sensevoice-small/v3/`` or a plain local path — used in place (verified if a
  digest is given).

Integrity: the digest of a directory artifact is the sha256 of its manifest (``senseops_common.storage``
defines it, the operator records it in ``ASRModel.spec.sha256``). Given ``expected_sha256``, the
downloaded files must hash to it; without it, a ``MANIFEST.sha256`` inside the artifact (``sha256sum``
format) is checked file by file; with neither, the download is refused unless ``allow_unverified``.

Cache: ``$SENSEOPS_CACHE/model-cache/<digest>/``. A process finding a complete cache entry with the
right digest reuses it without touching the store; concurrent loaders are serialised by a file lock, and
a directory only appears under its final name once every file is verified.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from senseops_common.cachedir import locked, staged_directory
from senseops_common.progress import Progress
from senseops_common.storage import (
    MANIFEST_NAME,
    StorageError,
    local_directory_manifest,
    open_store,
    parse_uri,
)

_VERIFIED_MARKER = ".senseops-verified"
_REMOTE_SCHEMES = ("cos", "s3")


class ModelSourceError(RuntimeError):
    """The model could not be fetched or failed verification; the message says which and why."""


def cache_root() -> Path:
    """``$SENSEOPS_CACHE/model-cache`` (default ``~/.cache/senseops/model-cache``)."""
    base = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    return base / "model-cache"


def resolve_model_dir(
    uri: str,
    cache_dir: str | Path | None = None,
    *,
    expected_sha256: str | None = None,
    allow_unverified: bool = False,
    copy_file_uris: bool = False,
) -> Path:
    """Return a local directory holding the verified model named by ``uri``.

    ``cache_dir`` defaults to :func:`cache_root`; ``expected_sha256`` is the directory digest
    (``ASRModel.spec.sha256``). ``file://`` artifacts are used in place unless ``copy_file_uris``
    (then they go through the same download-verify-cache path as remote ones, e.g. from a network
    mount). Raises :class:`ModelSourceError` with the reason on any failure.
    """
    if not uri.strip():
        raise ModelSourceError("no model URI configured (set SENSEOPS_MODEL_URI)")
    expected = _normalise_digest(expected_sha256)
    if "://" not in uri:
        return _verify_local(Path(uri), expected, allow_unverified=True)
    parsed = parse_uri(uri if uri.endswith("/") else uri + "/")
    if parsed.scheme == "file" and not copy_file_uris:
        return _verify_local(Path("/" + parsed.key), expected, allow_unverified=True)
    if parsed.scheme not in (*_REMOTE_SCHEMES, "file"):
        raise ModelSourceError(f"unsupported model URI scheme {parsed.scheme!r} in {uri}")
    root = Path(cache_dir) if cache_dir else cache_root()
    entry_name = expected or "uri-" + hashlib.sha256(str(parsed).encode()).hexdigest()[:32]
    entry = root / entry_name
    if _is_complete(entry, expected):
        return entry
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f"{entry_name}.lock"):
        if _is_complete(entry, expected):
            return entry
        with staged_directory(entry) as staging:
            digest = _download(str(parsed), staging, expected, allow_unverified)
            (staging / _VERIFIED_MARKER).write_text(digest + "\n")
    return entry


def _normalise_digest(value: str | None) -> str | None:
    if not value:
        return None
    digest = value.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ModelSourceError(f"expected sha256 {value!r} is not 64 hexadecimal characters")
    return digest


def _is_complete(entry: Path, expected: str | None) -> bool:
    marker = entry / _VERIFIED_MARKER
    if not marker.is_file():
        return False
    return expected is None or marker.read_text().strip() == expected


def _verify_local(path: Path, expected: str | None, allow_unverified: bool) -> Path:
    if not path.is_dir():
        raise ModelSourceError(f"model directory {path} does not exist")
    if expected is not None:
        _, digest, _ = local_directory_manifest(path)
        if digest != expected:
            raise ModelSourceError(f"model directory {path} has sha256 {digest}, expected {expected}")
    return path


def _safe_relative(key: str, prefix: str) -> PurePosixPath:
    relative = PurePosixPath(key[len(prefix) :])
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ModelSourceError(f"refusing object {key!r}: its path escapes the model directory")
    return relative


def _download(uri: str, staging: Path, expected: str | None, allow_unverified: bool) -> str:
    try:
        store = open_store(uri)
        objects = list(store.list(""))
        if not objects:
            raise ModelSourceError(f"no objects below {uri}: is the model URI right?")
        with Progress("model download", total=sum(info.size for info in objects), unit="B") as progress:
            finished = 0  # bytes of the files already downloaded
            for number, info in enumerate(objects, start=1):
                relative = _safe_relative(info.key, "")
                target = staging.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                progress.update(done=finished, files=f"{number - 1}/{len(objects)}")

                def report(received: int, base: int = finished) -> None:
                    progress.update(done=base + received)

                store.download(info.key, target, progress=report)
                finished += info.size
            progress.update(done=finished, files=f"{len(objects)}/{len(objects)}")
    except StorageError as exc:
        raise ModelSourceError(f"could not download the model from {uri}: {exc}") from exc
    _, digest, _ = local_directory_manifest(staging)
    if expected is not None:
        if digest != expected:
            raise ModelSourceError(f"model at {uri} has sha256 {digest}, expected {expected}")
        return digest
    manifest = staging / MANIFEST_NAME
    if manifest.is_file():
        _check_manifest(staging, manifest.read_text(encoding="utf-8"), uri)
        return digest
    if not allow_unverified:
        raise ModelSourceError(
            f"model at {uri} has no {MANIFEST_NAME} and no expected sha256 was given; "
            "set MODEL_SHA256 (or upload the manifest with the model)"
        )
    return digest


def _check_manifest(root: Path, text: str, uri: str) -> None:
    from senseops_common.storage import sha256_file

    listed: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        digest, _, relative = line.partition("  ")
        listed.add(relative)
        file = root / relative
        if not file.is_file():
            raise ModelSourceError(f"{MANIFEST_NAME} of {uri} lists {relative}, which was not downloaded")
        actual, _ = sha256_file(file)
        if actual != digest.strip():
            raise ModelSourceError(f"{relative} in {uri} has sha256 {actual}, its manifest says {digest}")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    unlisted = present - listed
    if unlisted:
        raise ModelSourceError(f"{uri} contains files its {MANIFEST_NAME} does not list: {sorted(unlisted)}")


