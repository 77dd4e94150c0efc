"""Property tests for what parses untrusted input: stream options, frame sizes, stored-audio URIs."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from senseops_runtime.stored_audio import SourceRefusal, check_audio_source
from senseops_runtime.streaming.decisions import CloseVerdict, StreamOptions, check_audio_frame, parse_options

ALLOWED = ["s3://audio-bucket/audio/"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_parse_options_never_raises_and_refuses_with_data_codes(text: str) -> None:
    result = parse_options(text)
    assert isinstance(result, StreamOptions | CloseVerdict)
    if isinstance(result, CloseVerdict):
        assert result.code in (1003, 1007) and result.reason


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200_000))
def test_frame_check_accepts_exactly_even_sizes_within_the_bound(size: int) -> None:
    verdict = check_audio_frame(size, 64_000)
    assert (verdict is None) == (size % 2 == 0 and size <= 64_000)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(
        ["", "/", "file://", "http://", "https://", "s3://", "cos://", "S3://", "ftp://", "s3:/", "../"]
    ).flatmap(lambda prefix: st.text(max_size=60).map(lambda rest: prefix + rest))
)
def test_stored_audio_only_ever_accepts_allowed_s3_objects(path: str) -> None:
    result = check_audio_source(path, ALLOWED)
    if not isinstance(result, SourceRefusal):
        assert result.startswith("s3://audio-bucket/audio/") and not result.endswith("/")
        assert ".." not in result.split("/")
    else:
        assert result.status in (400, 403, 422) and result.message
