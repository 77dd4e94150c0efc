"""Error mapping: callers see NotFound / AccessDenied / Unavailable / StorageError naming the URI —
never an SDK exception. Real servers where they can produce the error (MinIO checks signatures; the
moto COS stand-in does not, so COS access-denied mapping is table-tested)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from senseops_common.storage import (
    AccessDenied,
    NotFound,
    StorageError,
    StoreConfig,
    Unavailable,
    open_store,
)
from senseops_common.storage.cos_backend import translate_cos_error
from senseops_common.storage.retry import call_with_retries
from senseops_common.storage.s3_backend import S3Store
from tests.servers._proc import free_port
from tests.servers.cos_standin import CosStandin
from tests.servers.minio import MinioServer

FAST = {"request_timeout_s": 0.5, "deadline_s": 3.0, "max_attempts": 3}


def test_s3_wrong_secret_is_access_denied(minio_server: MinioServer, minio_bucket: str) -> None:
    env = {**minio_server.store_env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret-key"}
    store = open_store(f"s3://{minio_bucket}/", StoreConfig.from_env(env))
    with pytest.raises(AccessDenied) as caught:
        store.put("x", b"1")
    assert f"s3://{minio_bucket}/x" in str(caught.value)
    assert not isinstance(caught.value, Unavailable)  # not transient: not retried


def test_s3_missing_bucket_is_not_found(minio_server: MinioServer) -> None:
    store = open_store("s3://no-such-bucket-here/", StoreConfig.from_env(minio_server.store_env()))
    with pytest.raises(NotFound, match="bucket does not exist"):
        store.put("x", b"1")


def test_cos_missing_bucket_is_not_found(cos_standin: CosStandin) -> None:
    store = open_store("cos://nosuch-1250000000/", StoreConfig.from_env(cos_standin.store_env()))
    with pytest.raises(NotFound) as caught:
        store.stat("x")
    assert "cos://nosuch-1250000000/x" in str(caught.value)


def _closed_port_config(scheme: str) -> StoreConfig:
    port = free_port()  # nothing listens there
    if scheme == "s3":
        return StoreConfig(s3_endpoint=f"http://127.0.0.1:{port}", s3_path_style=True, s3_access_key="a",
                           s3_secret_key="b", **FAST)  # type: ignore[arg-type]
    return StoreConfig(cos_region="ap-guangzhou", cos_scheme="http", cos_ip="127.0.0.1", cos_port=port,
                       cos_secret_id="a", cos_secret_key="b", **FAST)  # type: ignore[arg-type]


@pytest.mark.parametrize("uri", ["s3://down-bucket/", "cos://down-1250000000/"])
def test_unreachable_store_is_unavailable_after_retries(uri: str, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(uri, _closed_port_config(uri.split(":")[0]))
    caplog.set_level(logging.INFO, logger="senseops.storage")
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        store.put("seg.wav", b"x")
    assert uri + "seg.wav" in str(caught.value)
    assert time.monotonic() - started < 10  # bounded
    retries = [r for r in caplog.records if "Retrying" in r.getMessage()]
    assert len(retries) == FAST["max_attempts"] - 1


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung store)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize("scheme", ["s3", "cos"])
def test_hung_store_times_out_as_unavailable(scheme: str, silent_server: int) -> None:
    if scheme == "s3":
        config = StoreConfig(s3_endpoint=f"http://127.0.0.1:{silent_server}", s3_path_style=True,
                             s3_access_key="a", s3_secret_key="b", request_timeout_s=0.5, deadline_s=2.0,
                             max_attempts=2)
        uri = "s3://hung-bucket/"
    else:
        config = StoreConfig(cos_region="ap-guangzhou", cos_scheme="http", cos_ip="127.0.0.1",
                             cos_port=silent_server, cos_secret_id="a", cos_secret_key="b",
                             request_timeout_s=0.5, deadline_s=2.0, max_attempts=2)
        uri = "cos://hung-1250000000/"
    started = time.monotonic()
    with pytest.raises(Unavailable):
        open_store(uri, config).stat("k")
    assert time.monotonic() - started < 8


def _cos_error(code: str, status: int) -> CosServiceError:
    return CosServiceError("GET", {"code": code, "message": f"{code} happened", "resource": "r",
                                   "requestid": "q", "traceid": "t"}, status)


@pytest.mark.parametrize(("exc", "expected"), [
    (_cos_error("NoSuchKey", 404), NotFound),
    (_cos_error("NoSuchBucket", 404), NotFound),
    (_cos_error("AccessDenied", 403), AccessDenied),
    (_cos_error("SignatureDoesNotMatch", 403), AccessDenied),
    (_cos_error("InvalidAccessKeyId", 403), AccessDenied),
    (_cos_error("SlowDown", 503), Unavailable),
    (_cos_error("InternalError", 500), Unavailable),
    (_cos_error("Whatever", 502), Unavailable),
    (_cos_error("InvalidArgument", 400), StorageError),
    (CosClientError("HTTPConnectionPool: Max retries exceeded (Connection refused)"), Unavailable),
    (ValueError("boom"), StorageError),
])
def test_cos_error_table(exc: Exception, expected: type[StorageError]) -> None:
    mapped = translate_cos_error(exc, "cos://b-1250000000/k")
    assert type(mapped) is expected
    assert "cos://b-1250000000/k" in str(mapped)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code}!"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


@pytest.mark.parametrize(("exc", "expected"), [
    (_client_error("NoSuchKey", 404), NotFound),
    (_client_error("404", 404), NotFound),
    (_client_error("AccessDenied", 403), AccessDenied),
    (_client_error("ExpiredToken", 400), AccessDenied),
    (_client_error("SlowDown", 503), Unavailable),
    (_client_error("RequestTimeout", 400), Unavailable),
    (_client_error("InternalError", 500), Unavailable),
    (_client_error("TooManyRequests", 429), Unavailable),
    (_client_error("InvalidArgument", 400), StorageError),
    (EndpointConnectionError(endpoint_url="http://x"), Unavailable),
    (RuntimeError("odd"), StorageError),
])
def test_s3_error_table(exc: Exception, expected: type[StorageError]) -> None:
    store = S3Store("b", "", "s3://b/", StoreConfig(s3_access_key="a", s3_secret_key="b"))
    mapped = store._translate(exc, "s3://b/k")
    assert type(mapped) is expected
    assert "s3://b/k" in str(mapped)


def test_retry_policy_retries_transient_only() -> None:
    calls: list[str] = []

    def flaky() -> str:
        calls.append("x")
        if len(calls) < 3:
            raise Unavailable("s3://b/k: down", "s3://b/k")
        return "ok"

    assert call_with_retries(flaky, max_attempts=5, deadline_s=30, what="s3://b/k") == "ok"
    assert len(calls) == 3

    calls.clear()

    def missing() -> None:
        calls.append("x")
        raise NotFound("s3://b/k: no such object", "s3://b/k")

    with pytest.raises(NotFound):
        call_with_retries(missing, max_attempts=5, deadline_s=30, what="s3://b/k")
    assert len(calls) == 1


def test_retry_policy_gives_up_after_max_attempts() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise Unavailable("down", "u")

    with pytest.raises(Unavailable):
        call_with_retries(down, max_attempts=3, deadline_s=30, what="u")
    assert len(calls) == 3
