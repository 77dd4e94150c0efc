"""The drain's pure decisions (senseops_runtime.drain), as tables."""

from __future__ import annotations

import asyncio

import pytest

from senseops_runtime.drain import (
    DrainState,
    StreamDrainStep,
    check_drain_settings,
    drain_settled,
    refuses_http,
    stream_drain_step,
)

S = StreamDrainStep


@pytest.mark.parametrize(
    ("name", "draining", "segment_open", "waited_s", "grace_s", "expected"),
    [
        ("not draining, in an utterance", False, True, 0.0, 5.0, S.CARRY_ON),
        ("not draining, between utterances", False, False, 0.0, 5.0, S.CARRY_ON),
        ("draining between utterances: close at once", True, False, 0.0, 5.0, S.CLOSE),
        ("draining inside an utterance: let it finish", True, True, 0.1, 5.0, S.FINISH_UTTERANCE),
        ("grace just not over", True, True, 4.99, 5.0, S.FINISH_UTTERANCE),
        ("grace over: cut the utterance", True, True, 5.0, 5.0, S.CLOSE),
        ("no grace configured", True, True, 0.0, 0.0, S.CLOSE),
    ],
)
def test_stream_drain_step(
    name: str, draining: bool, segment_open: bool, waited_s: float, grace_s: float, expected: StreamDrainStep
) -> None:
    assert stream_drain_step(draining, segment_open, waited_s, grace_s) is expected, name


@pytest.mark.parametrize(
    ("path", "draining", "refused"),
    [
        ("/api/transcribe", False, False),
        ("/api/transcribe", True, True),
        ("/v1/audio/transcriptions", True, True),
        ("/console", True, True),
        ("/readyz", True, False),  # the kubelet must read "not ready", not a refusal
        ("/healthz", True, False),  # liveness holds: a draining pod is not restarted
        ("/api/health", True, False),
        ("/metrics", True, False),  # the last numbers of the pod are still scraped
        ("/metrics/", True, True),  # exact paths only
    ],
)
def test_refuses_http(path: str, draining: bool, refused: bool) -> None:
    assert refuses_http(path, draining) is refused


@pytest.mark.parametrize(
    ("streams", "requests", "settled"), [(0, 0, True), (1, 0, False), (0, 1, False), (3, 2, False)]
)
def test_drain_settled(streams: int, requests: int, settled: bool) -> None:
    assert drain_settled(streams, requests) is settled


@pytest.mark.parametrize(
    ("timeout_s", "grace_s", "error"),
    [
        (20.0, 5.0, None),
        (20.0, 0.0, None),
        (0.0, 0.0, "SENSEOPS_DRAIN_TIMEOUT_S=0.0 must be a positive"),
        (float("nan"), 1.0, "SENSEOPS_DRAIN_TIMEOUT_S=nan"),
        (10.0, 10.0, "SENSEOPS_DRAIN_SEGMENT_GRACE_S=10.0 must be at least 0 and below"),
        (10.0, -1.0, "SENSEOPS_DRAIN_SEGMENT_GRACE_S=-1.0"),
    ],
)
def test_check_drain_settings(timeout_s: float, grace_s: float, error: str | None) -> None:
    if error is None:
        check_drain_settings(timeout_s, grace_s)
    else:
        with pytest.raises(ValueError, match=error.replace("(", r"\(")):
            check_drain_settings(timeout_s, grace_s)


def test_drain_state_wakes_watchers_once_and_counts_time() -> None:
    async def scenario() -> None:
        state = DrainState()
        assert state.waited(100.0) == 0.0
        before = state.watch()
        assert not before.done()
        assert state.begin(100.0)
        assert not state.begin(101.0), "a second signal does not restart the drain"
        await asyncio.wait_for(before, 1)
        assert state.watch().done(), "a stream that looks after the drain began sees it at once"
        assert state.waited(103.5) == 3.5

    asyncio.run(scenario())
