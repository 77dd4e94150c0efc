"""One behaviour suite run against every backend on a real or local server:

- file:// — a temp directory;
- s3://   — a real MinIO built from its Go module (tests/servers/minio.py);
- cos://  — the real COS SDK against moto's S3 server on loopback, a *protocol stand-in* for Tencent
            COS (no COS server runs offline; see tests/servers/cos_standin.py).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import httpx
import pytest

from senseops_common.storage import (
    ChecksumMismatch,
    InvalidURI,
    NotFound,
    StoreConfig,
    Unsupported,
    open_store,
)
from tests.storage.backends import Backend


def test_put_bytes_then_get_stat_exists(backend: Backend) -> None:
    data = b"hello \x00 segment" * 100
    info = backend.store.put("raw/a1/20260101T000000Z/s1.wav", data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.uri == backend.root_uri + "raw/a1/20260101T000000Z/s1.wav"
    stat = backend.store.stat("raw/a1/20260101T000000Z/s1.wav")
    assert (stat.size, stat.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert backend.store.get_bytes("raw/a1/20260101T000000Z/s1.wav") == data
    assert backend.store.exists("raw/a1/20260101T000000Z/s1.wav")
    assert not backend.store.exists("raw/a1/20260101T000000Z/s2.wav")


def test_put_file_and_stream_then_download_and_stream_back(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert backend.store.put("from-file.bin", source).sha256 == expected
    assert backend.store.put("from-stream.bin", io.BytesIO(source.read_bytes())).sha256 == expected
    for key in ("from-file.bin", "from-stream.bin"):
        dest = tmp_path / "out" / key
        info = backend.store.download(key, dest)
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == expected == info.sha256
        chunks = list(backend.store.open_stream(key))
        assert len(chunks) > 1  # really streamed, not one blob
        assert hashlib.sha256(b"".join(chunks)).hexdigest() == expected


def test_overwrite_replaces_bytes_and_digest(backend: Backend) -> None:
    backend.store.put("k", b"first")
    backend.store.put("k", b"second version")
    assert backend.store.get_bytes("k") == b"second version"
    assert backend.store.stat("k").sha256 == hashlib.sha256(b"second version").hexdigest()


def test_missing_object_raises_not_found_naming_the_uri(backend: Backend, tmp_path: Path) -> None:
    uri = backend.root_uri + "no/such/key"
    for call in (
        lambda: backend.store.stat("no/such/key"),
        lambda: backend.store.get_bytes("no/such/key"),
        lambda: list(backend.store.open_stream("no/such/key")),
        lambda: backend.store.download("no/such/key", tmp_path / "x"),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert uri in str(caught.value)
    assert not (tmp_path / "x").exists()
    backend.store.delete("no/such/key")  # idempotent, like S3


def test_list_by_prefix_pages_in_key_order(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [f"asr/a1/{i:03d}.jsonl" for i in range(23)] + ["asr/a10/x", "asr/a2/y", "other/z"]
    for key in keys:
        backend.store.put(key, key.encode())
    pages = []
    real_page = backend.store._list_page

    def counting(*args: object, **kwargs: object) -> object:
        pages.append(1)
        return real_page(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(backend.store, "_list_page", counting)
    listed = list(backend.store.list("asr/a1/", page_size=5))
    assert [i.key for i in listed] == sorted(k for k in keys if k.startswith("asr/a1/"))
    assert all(i.size == len(i.key) for i in listed)
    assert len(pages) == 5  # 23 objects in pages of 5
    assert [i.key for i in backend.store.list("asr/a1")] == sorted(k for k in keys if k.startswith("asr/a1"))
    assert list(backend.store.list("nothing/")) == []


def test_delete_removes_object_from_stat_and_list(backend: Backend) -> None:
    backend.store.put("d/one", b"1")
    backend.store.put("d/two", b"2")
    backend.store.delete("d/one")
    assert not backend.store.exists("d/one")
    assert [i.key for i in backend.store.list("d/")] == ["d/two"]


def test_corrupted_object_is_detected_on_read(backend: Backend, tmp_path: Path) -> None:
    original = b"A" * 4096
    backend.store.put("rot.bin", original)
    rotten = b"B" + original[1:]
    if backend.name == "file":
        # Bit rot in place: same size and mtime, so the sidecar still claims the old digest.
        path = Path(backend.root_uri.removeprefix("file://")) / "rot.bin"
        st = path.stat()
        with open(path, "r+b") as handle:
            handle.write(b"B")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif backend.name == "s3":
        backend.store.client.put_object(  # type: ignore[attr-defined]
            Bucket=backend.bucket, Key="rot.bin", Body=rotten,
            Metadata={"sha256": hashlib.sha256(original).hexdigest()},
        )
    else:
        backend.store.client.put_object(  # type: ignore[attr-defined]
            Bucket=backend.bucket, Key="rot.bin", Body=rotten,
            Metadata={"x-cos-meta-sha256": hashlib.sha256(original).hexdigest()},
        )
    with pytest.raises(ChecksumMismatch) as caught:
        backend.store.get_bytes("rot.bin")
    assert backend.root_uri + "rot.bin" in str(caught.value)
    with pytest.raises(ChecksumMismatch):
        backend.store.download("rot.bin", tmp_path / "rot.out")
    assert not (tmp_path / "rot.out").exists()  # never leave a corrupt file behind


def test_presigned_get_serves_the_bytes(backend: Backend) -> None:
    data = os.urandom(70_000)
    backend.store.put("p/q r.bin", data)
    if backend.name == "file":
        with pytest.raises(Unsupported):
            backend.store.presign_get("p/q r.bin")
        return
    url = backend.store.presign_get("p/q r.bin", expires_s=60)
    # On the COS stand-in the URL points at 127.0.0.1; real COS would get the bucket in the hostname,
    # so the test sends the Host header that name would produce.
    reply = httpx.get(url, headers=backend.presign_headers, timeout=10)
    assert reply.status_code == 200
    assert reply.content == data


def test_unsafe_keys_are_refused(backend: Backend) -> None:
    for key in ("../escape", "a/../../b", "/abs", "a//b", "a\\b", "nul\x00"):
        with pytest.raises(InvalidURI):
            backend.store.put(key, b"x")


def test_store_below_a_prefix_uses_relative_keys(backend: Backend) -> None:
    sub = open_store(backend.root_uri + "models/sv/", backend.config)
    sub.put("v1/model.pt", b"weights")
    assert backend.store.get_bytes("models/sv/v1/model.pt") == b"weights"
    assert [i.key for i in sub.list()] == ["v1/model.pt"]
    assert sub.stat("v1/model.pt").uri == backend.root_uri + "models/sv/v1/model.pt"


@pytest.mark.slow
def test_multipart_object_of_100_mib_round_trips_by_sha256(backend: Backend, tmp_path: Path) -> None:
    size = 100 * 1024 * 1024 + 12345
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as handle:
        block = os.urandom(1024 * 1024)
        for i in range(size // len(block) + 1):
            piece = (block[i % 251 :] + block[: i % 251])[: min(len(block), size - i * len(block))]
            digest.update(piece)
            handle.write(piece)
    info = backend.store.put("models/big/v1/model.bin", source)
    assert info.sha256 == digest.hexdigest() and info.size == size
    if backend.name != "file":
        # The ETag of a multipart object is "<md5 of part md5s>-<part count>": proof multipart was used.
        if backend.name == "s3":
            etag = backend.store.client.head_object(Bucket=backend.bucket, Key="models/big/v1/model.bin")["ETag"]  # type: ignore[attr-defined]
        else:
            etag = backend.store.client.head_object(Bucket=backend.bucket, Key="models/big/v1/model.bin")["ETag"]  # type: ignore[attr-defined]
        parts = -(-size // StoreConfig().part_size)
        assert etag.strip('"').endswith(f"-{parts}")
    dest = tmp_path / "back.bin"
    back = backend.store.download("models/big/v1/model.bin", dest)
    assert back.sha256 == digest.hexdigest()
    check = hashlib.sha256()
    with open(dest, "rb") as handle:
        while chunk := handle.read(1 << 20):
            check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()
    assert dest.stat().st_size == size


def test_missing_local_source_is_a_storage_error_naming_both(backend: Backend, tmp_path: Path) -> None:
    from senseops_common.storage import StorageError

    with pytest.raises(StorageError) as caught:
        backend.store.put("k", tmp_path / "does-not-exist.bin")
    assert "does-not-exist.bin" in str(caught.value) and backend.root_uri + "k" in str(caught.value)
    assert not backend.store.exists("k")
