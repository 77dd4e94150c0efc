"""``cos://`` backend on Tencent's ``cos-python-sdk-v5`` (COS XML API, COS request signing).

Region, custom endpoint, internal (VPC) domain, http/https and an explicit ``IP``/``Port`` (the bucket
stays in the Host header) all come from :class:`StoreConfig`; credentials are permanent
(SecretId/SecretKey) or STS temporary ones (plus Token). The SDK's own retry loop is disabled
(``retry=0``) so the module's tenacity policy is the only one; ``Timeout`` bounds each request.
The object's sha256 is kept in the ``x-cos-meta-sha256`` header.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from senseops_common.storage.base import SHA256_META, ListPage, Payload, StoreBase
from senseops_common.storage.config import CHUNK_SIZE, StoreConfig
from senseops_common.storage.errors import AccessDenied, NotFound, StorageError, Unavailable

META_HEADER = f"x-cos-meta-{SHA256_META}"
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
           "InvalidToken", "RequestTimeTooSkewed"}
_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}


def make_cos_client(config: StoreConfig) -> Any:
    """A ``CosS3Client`` for ``config``."""
    from qcloud_cos import CosConfig, CosS3Client

    kwargs: dict[str, Any] = {
        "Region": config.cos_region,
        "SecretId": config.cos_secret_id,
        "SecretKey": config.cos_secret_key,
        "Token": config.cos_token,
        "Scheme": config.cos_scheme,
        "Timeout": config.request_timeout_s,
        # The SDK builds the internal (VPC) domain cos-internal.<region>.tencentcos.cn only on the new
        # domain; the public default stays <bucket>.cos.<region>.myqcloud.com.
        "EnableOldDomain": not config.cos_internal_domain,
        "EnableInternalDomain": config.cos_internal_domain,
        "PoolConnections": max(10, config.part_concurrency * 2),
        "PoolMaxSize": max(10, config.part_concurrency * 2),
    }
    if config.cos_endpoint:
        kwargs["Endpoint"] = config.cos_endpoint
    if config.cos_ip:
        kwargs["IP"] = config.cos_ip
        kwargs["Port"] = config.cos_port
    if not (config.cos_secret_id and config.cos_secret_key):
        kwargs["Anonymous"] = True  # the SDK insists; requests will then fail with AccessDenied
    return CosS3Client(CosConfig(**kwargs), retry=0)


def _header(headers: dict[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


class CosStore(StoreBase):
    """One COS bucket (``<name>-<appid>``), optionally below a key prefix."""

    def __init__(self, bucket: str, prefix: str, root_uri: str, config: StoreConfig) -> None:
        super().__init__(root_uri, prefix, config)
        self.bucket = bucket
        self.client = make_cos_client(config)

    def _translate(self, exc: Exception, uri: str) -> StorageError:
        return translate_cos_error(exc, uri)

    def _supports_multipart(self) -> bool:
        return True

    def _upload(self, full: str, payload: Payload) -> None:
        with payload.open() as body:
            self.client.put_object(
                Bucket=self.bucket, Key=full, Body=body, ContentLength=str(payload.size),
                Metadata={META_HEADER: payload.sha256},
            )

    def _read(self, full: str) -> Iterator[bytes]:
        reply = self.client.get_object(Bucket=self.bucket, Key=full)
        return reply["Body"].get_stream(CHUNK_SIZE)  # type: ignore[no-any-return]

    def _stat(self, full: str) -> tuple[int, str | None]:
        headers = self.client.head_object(Bucket=self.bucket, Key=full)
        return int(_header(headers, "content-length") or 0), _header(headers, META_HEADER)

    def _list_page(self, full_prefix: str, token: str | None, page_size: int) -> ListPage:
        reply = self.client.list_objects(
            Bucket=self.bucket, Prefix=full_prefix, Marker=token or "", MaxKeys=page_size
        )
        contents = reply.get("Contents", [])
        if isinstance(contents, dict):  # the SDK's XML-to-dict gives a dict for a single entry
            contents = [contents]
        page: list[tuple[str, int, str | None]] = [(str(item["Key"]), int(item["Size"]), None) for item in contents]
        truncated = str(reply.get("IsTruncated", "false")).lower() == "true"
        if not (truncated and page):
            return page, None
        # Without a delimiter the marker for the next page is the last key of this one.
        return page, str(reply.get("NextMarker") or page[-1][0])

    def _delete(self, full: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=full)

    def _presign(self, full: str, expires_s: int) -> str:
        return str(self.client.get_presigned_download_url(Bucket=self.bucket, Key=full, Expired=expires_s))

    def _mpu_create(self, full: str, sha256: str) -> str:
        reply = self.client.create_multipart_upload(Bucket=self.bucket, Key=full, Metadata={META_HEADER: sha256})
        return str(reply["UploadId"])

    def _mpu_part(self, full: str, upload_id: str, number: int, data: bytes) -> str:
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=full, Body=data, PartNumber=number, UploadId=upload_id
        )
        return str(reply["ETag"])

    def _mpu_complete(self, full: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=full, UploadId=upload_id,
            MultipartUpload={"Part": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
        )

    def _mpu_abort(self, full: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)


def translate_cos_error(exc: Exception, uri: str) -> StorageError:
    """Map a COS SDK (or transport) exception to the storage hierarchy. Pure: table-tested."""
    from qcloud_cos.cos_exception import CosClientError, CosServiceError

    if isinstance(exc, CosServiceError):
        code = str(exc.get_error_code() or "")
        status = int(exc.get_status_code() or 0)
        message = str(exc.get_error_msg() or code)
        if code in _NOT_FOUND or status == 404:
            what = "bucket does not exist" if code == "NoSuchBucket" else "no such object"
            return NotFound(f"{uri}: {what}", uri)
        if code in _DENIED or status == 403:
            return AccessDenied(f"{uri}: access denied ({code}: {message})", uri)
        if code in _TRANSIENT or status >= 500 or status == 429:
            return Unavailable(f"{uri}: store unavailable ({code or status}: {message})", uri)
        return StorageError(f"{uri}: {code or status}: {message}", uri)
    if isinstance(exc, CosClientError):
        # The SDK raises CosClientError for transport failures (connection refused, timeout, reset).
        return Unavailable(f"{uri}: store unavailable ({exc})", uri)
    if isinstance(exc, ConnectionError | TimeoutError):
        return Unavailable(f"{uri}: store unavailable ({type(exc).__name__}: {exc})", uri)
    return StorageError(f"{uri}: {type(exc).__name__}: {exc}", uri)
