"""StreamAudio against a plain array model (hypothesis): appends, slices and trims agree."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from senseops_runtime.streaming.buffer import StreamAudio

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("trim"), st.integers(min_value=-10, max_value=400)),
        st.tuples(st.just("slice"), st.tuples(st.integers(-10, 400), st.integers(-10, 400))),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_matches_a_flat_array(ops: list[tuple[str, object]]) -> None:
    audio = StreamAudio()
    reference = np.zeros(0, dtype=np.float32)
    origin = 0
    for op, arg in ops:
        if op == "append":
            samples = np.arange(len(reference), len(reference) + int(arg), dtype=np.float32)  # type: ignore[call-overload]
            audio.append(samples)
            reference = np.concatenate([reference, samples])
        elif op == "trim":
            audio.trim(int(arg))  # type: ignore[call-overload]
            origin = max(origin, min(int(arg), len(reference)))  # type: ignore[call-overload]
        else:
            start, end = arg  # type: ignore[misc]
            expected = reference[max(start, origin) : max(max(start, origin), min(end, len(reference)))]
            np.testing.assert_array_equal(audio.slice(start, end), expected)
        assert audio.total == len(reference) and audio.origin == origin
