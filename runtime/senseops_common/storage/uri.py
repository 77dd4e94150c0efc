"""Parse and format storage URIs: ``cos://<bucket>-<appid>/<key>``, ``s3://<bucket>/<key>``,
``file:///<absolute path>``.

Keys are taken literally (no percent-decoding), use ``/`` as separator, and must not contain empty,
``.`` or ``..`` segments, backslashes or control characters: the same key must name the same object on
every backend, and a key must never escape a ``file://`` root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from senseops_common.storage.errors import InvalidURI

SCHEMES = ("cos", "s3", "file")

# COS bucket names are ``<name>-<appid>``: lowercase letters, digits and '-', appid all digits.
_COS_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?-[0-9]{5,20}$")
# S3 bucket names (the DNS-compatible subset every S3 server accepts).
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class ObjectURI:
    """A parsed storage URI. ``bucket`` is empty for ``file://``; ``key`` is relative (no leading '/')."""

    scheme: str
    bucket: str
    key: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file:///{self.key}"
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def root(self) -> str:
        """The URI of the bucket (or, for ``file://``, of the filesystem root) holding this object."""
        return "file:///" if self.scheme == "file" else f"{self.scheme}://{self.bucket}"

    @property
    def is_prefix(self) -> bool:
        """True when the key is empty or ends with '/', i.e. the URI names a "directory"."""
        return self.key == "" or self.key.endswith("/")

    def child(self, relative_key: str) -> ObjectURI:
        """The URI of ``relative_key`` below this URI taken as a directory."""
        base = self.key if self.is_prefix else self.key + "/"
        return ObjectURI(self.scheme, self.bucket, check_key(base + relative_key, str(self)))


def check_key(key: str, uri: str = "") -> str:
    """Return ``key`` if it is a safe object key (may be empty or end with '/'), else raise InvalidURI."""
    where = uri or key
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidURI(f"key is longer than {MAX_KEY_BYTES} bytes in {where!r}", where)
    if _CONTROL.search(key) or "\\" in key:
        raise InvalidURI(f"key contains a control character or backslash in {where!r}", where)
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidURI(f"key is not valid UTF-8 text in {where!r}", where) from exc
    if key.startswith("/"):
        raise InvalidURI(f"key must not start with '/' in {where!r}", where)
    segments = key.split("/")
    if segments and segments[-1] == "":
        segments = segments[:-1]  # a trailing '/' marks a prefix
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidURI(f"key has an empty, '.' or '..' segment in {where!r}", where)
    return key


def parse_uri(uri: str) -> ObjectURI:
    """Parse a storage URI; raise :class:`InvalidURI` with a sentence saying what is wrong."""
    if not isinstance(uri, str):
        raise InvalidURI(f"a storage URI must be a string, got {type(uri).__name__}", repr(uri))
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise InvalidURI(
            f"unsupported storage URI {uri!r}: use cos://<bucket-appid>/<key>, s3://<bucket>/<key> "
            "or file:///<absolute path>",
            uri,
        )
    if scheme == "file":
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if not rest.startswith("/"):
            raise InvalidURI(f"file URI {uri!r} must be file:///<absolute path> (no host)", uri)
        return ObjectURI("file", "", check_key(rest[1:], uri))
    bucket, _, key = rest.partition("/")
    pattern = _COS_BUCKET if scheme == "cos" else _S3_BUCKET
    if not pattern.match(bucket):
        expected = "<name>-<appid>, e.g. models-1250000000" if scheme == "cos" else "3-63 of a-z 0-9 . -"
        raise InvalidURI(f"bad bucket {bucket!r} in {uri!r}: expected {expected}", uri)
    return ObjectURI(scheme, bucket, check_key(key, uri))
