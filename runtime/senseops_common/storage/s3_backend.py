"""``s3://`` backend on boto3: AWS S3, MinIO, or Tencent COS through its S3-compatible endpoint.

boto3's own retries are switched off (one attempt per call) so the module's single tenacity policy is
the only retry layer; connect/read timeouts bound every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from senseops_common.storage.base import SHA256_META, ListPage, Payload, StoreBase
from senseops_common.storage.config import CHUNK_SIZE, StoreConfig
from senseops_common.storage.errors import AccessDenied, NotFound, StorageError, Unavailable

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchUpload"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
           "InvalidToken", "AllAccessDisabled", "AccountProblem"}
_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
              "ThrottlingException", "RequestTimeTooSkewed", "XMinioServerNotInitialized"}


def make_s3_client(config: StoreConfig) -> Any:
    """A boto3 S3 client for ``config`` (custom endpoint, path style, env/Secret credentials)."""
    import boto3
    from botocore.config import Config

    botocore_config = Config(
        region_name=config.s3_region,
        connect_timeout=config.request_timeout_s,
        read_timeout=config.request_timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": "path" if config.s3_path_style else "auto"},
        signature_version="s3v4",
        max_pool_connections=max(10, config.part_concurrency * 2),
        # Only send/verify checksums when an operation needs them: older S3-compatible servers reject the
        # newer default trailing CRC headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session(
        aws_access_key_id=config.s3_access_key,
        aws_secret_access_key=config.s3_secret_key,
        aws_session_token=config.s3_session_token,
    )
    return session.client("s3", endpoint_url=config.s3_endpoint, config=botocore_config)


class S3Store(StoreBase):
    """One S3 bucket (optionally below a key prefix)."""

    def __init__(self, bucket: str, prefix: str, root_uri: str, config: StoreConfig) -> None:
        super().__init__(root_uri, prefix, config)
        self.bucket = bucket
        self.client = make_s3_client(config)

    def _translate(self, exc: Exception, uri: str) -> StorageError:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            message = exc.response.get("Error", {}).get("Message", "") or code
            if code in _NOT_FOUND or status == 404:
                what = "bucket does not exist" if code == "NoSuchBucket" else "no such object"
                return NotFound(f"{uri}: {what}", uri)
            if code in _DENIED or status == 403:
                return AccessDenied(f"{uri}: access denied ({code}: {message})", uri)
            if code in _TRANSIENT or status >= 500 or status == 429:
                return Unavailable(f"{uri}: store unavailable ({code or status}: {message})", uri)
            return StorageError(f"{uri}: {code or status}: {message}", uri)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return AccessDenied(f"{uri}: no S3 credentials configured (set AWS_ACCESS_KEY_ID/...)", uri)
        if isinstance(exc, BotoConnectionError | HTTPClientError | ReadTimeoutError | ConnectionError
                      | TimeoutError):
            return Unavailable(f"{uri}: store unavailable ({type(exc).__name__}: {exc})", uri)
        if isinstance(exc, BotoCoreError):
            return StorageError(f"{uri}: {type(exc).__name__}: {exc}", uri)
        return StorageError(f"{uri}: {type(exc).__name__}: {exc}", uri)

    def _supports_multipart(self) -> bool:
        return True

    def _upload(self, full: str, payload: Payload) -> None:
        with payload.open() as body:
            self.client.put_object(
                Bucket=self.bucket, Key=full, Body=body, ContentLength=payload.size,
                Metadata={SHA256_META: payload.sha256},
            )

    def _read(self, full: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return body.iter_chunks(CHUNK_SIZE)  # type: ignore[no-any-return]

    def _stat(self, full: str) -> tuple[int, str | None]:
        head = self.client.head_object(Bucket=self.bucket, Key=full)
        return int(head["ContentLength"]), head.get("Metadata", {}).get(SHA256_META)

    def _list_page(self, full_prefix: str, token: str | None, page_size: int) -> ListPage:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix, "MaxKeys": page_size}
        if token:
            kwargs["ContinuationToken"] = token
        reply = self.client.list_objects_v2(**kwargs)
        # Listings carry no user metadata; sha256 is looked up lazily by stat() when a caller needs it.
        page: list[tuple[str, int, str | None]] = [
            (str(item["Key"]), int(item["Size"]), None) for item in reply.get("Contents", [])
        ]
        next_token = reply.get("NextContinuationToken") if reply.get("IsTruncated") else None
        return page, str(next_token) if next_token else None

    def _delete(self, full: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=full)

    def _presign(self, full: str, expires_s: int) -> str:
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=expires_s
        )
        return str(url)

    def _mpu_create(self, full: str, sha256: str) -> str:
        reply = self.client.create_multipart_upload(Bucket=self.bucket, Key=full, Metadata={SHA256_META: sha256})
        return str(reply["UploadId"])

    def _mpu_part(self, full: str, upload_id: str, number: int, data: bytes) -> str:
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=data
        )
        return str(reply["ETag"])

    def _mpu_complete(self, full: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=full, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
        )

    def _mpu_abort(self, full: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
