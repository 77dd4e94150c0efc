"""URI parser: table tests for the grammar and hypothesis properties (round trip, no stray exceptions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from senseops_common.storage import InvalidURI, ObjectURI, parse_uri

VALID = [
    ("cos://models-1250000000/models/sv/v1/model.pt", ObjectURI("cos", "models-1250000000", "models/sv/v1/model.pt")),
    ("s3://my.bucket-1/raw/a/b.wav", ObjectURI("s3", "my.bucket-1", "raw/a/b.wav")),
    ("s3://bkt", ObjectURI("s3", "bkt", "")),
    ("s3://bkt/", ObjectURI("s3", "bkt", "")),
    ("s3://bkt/dir/", ObjectURI("s3", "bkt", "dir/")),
    ("file:///var/lib/store/x.jsonl", ObjectURI("file", "", "var/lib/store/x.jsonl")),
    ("file://localhost/tmp/a", ObjectURI("file", "", "tmp/a")),
    ("file:///", ObjectURI("file", "", "")),
    ("s3://bkt/中文/段落.wav", ObjectURI("s3", "bkt", "中文/段落.wav")),
]

INVALID = [
    ("http://example.com/x", "unsupported"),
    ("s3:/bkt/x", "unsupported"),
    ("gs://bkt/x", "unsupported"),
    ("cos://models/x", "bad bucket"),  # no appid
    ("cos://Models-1250000000/x", "bad bucket"),
    ("s3://B/x", "bad bucket"),
    ("s3://ab/x", "bad bucket"),  # too short
    ("file://host/etc/passwd", "no host"),
    ("file://relative/path", "no host"),
    ("s3://bkt/a/../b", "'..'"),
    ("s3://bkt/a//b", "empty"),
    ("s3://bkt/./b", "'.'"),
    ("file:///etc/../root", "'..'"),
    ("s3://bkt/a\x00b", "control"),
    ("s3://bkt/a\\b", "backslash"),
    ("s3://bkt/" + "k" * 1025, "longer"),
]


@pytest.mark.parametrize(("uri", "expected"), VALID, ids=[v[0][:40] for v in VALID])
def test_valid_uris_parse(uri: str, expected: ObjectURI) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(("uri", "fragment"), INVALID, ids=[i[0][:40] for i in INVALID])
def test_invalid_uris_are_refused_with_a_reason_naming_the_uri(uri: str, fragment: str) -> None:
    with pytest.raises(InvalidURI) as caught:
        parse_uri(uri)
    assert fragment in str(caught.value)
    assert caught.value.uri == uri


def test_child_and_root() -> None:
    base = parse_uri("s3://bkt/models/sv/")
    assert str(base.child("v1/a.pt")) == "s3://bkt/models/sv/v1/a.pt"
    assert base.root == "s3://bkt" and parse_uri("file:///a/b").root == "file:///"
    with pytest.raises(InvalidURI):
        base.child("../x")


_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))
_keys = st.lists(_segment, min_size=0, max_size=6).map("/".join)
_s3_bucket = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]\Z")
_cos_bucket = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?-[0-9]{10}\Z")


@given(st.one_of(
    st.builds(lambda b, k: ObjectURI("s3", b, k), _s3_bucket, _keys),
    st.builds(lambda b, k: ObjectURI("cos", b, k), _cos_bucket, _keys),
    st.builds(lambda k: ObjectURI("file", "", k), _keys),
))
def test_format_then_parse_round_trips(uri: ObjectURI) -> None:
    assert parse_uri(str(uri)) == uri


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_invalid_uri_only(text: str) -> None:
    try:
        parsed = parse_uri(text)
    except InvalidURI:
        return
    # Whatever parses is safe: no traversal segment, and it formats back to an equivalent URI.
    assert ".." not in parsed.key.split("/")
    assert parse_uri(str(parsed)) == parsed


@given(st.lists(st.sampled_from(["a", "..", ".", "", "b"]), min_size=1, max_size=6))
def test_no_key_with_dot_segments_is_accepted(segments: list[str]) -> None:
    key = "/".join(segments)
    inner = segments[:-1] if segments[-1] == "" else segments
    try:
        parse_uri("s3://bucket/" + key)
    except InvalidURI:
        assert any(s in ("", ".", "..") for s in inner) or key.startswith("/")
        return
    assert all(s not in ("", ".", "..") for s in inner)
