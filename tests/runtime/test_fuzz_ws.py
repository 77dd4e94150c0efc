"""A hypothesis-driven WebSocket fuzzer against the real server: random frame types, sizes, timings and
tokens give only the defined close codes, never an internal error, and the server stays ready."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from tests.runtime.conftest import make_token
from tests.runtime.server import TEST_SECRET, RuntimeServer

MAX_EXAMPLES = 25
# 1000 normal, 1003/1007 bad data, 1008 auth/policy/idle, 1009 protocol size, 1013 busy; 1011 is a bug.
DEFINED_CLOSES = {1000, 1003, 1007, 1008, 1009, 1013}


def _expired() -> str:
    now = int(time.time())
    claims = {"sub": "fz", "scopes": ["stream"], "aud": "senseops-runtime", "iss": "senseops", "exp": now - 60}
    return jwt.encode(claims, TEST_SECRET, "HS256")


tokens = st.sampled_from(["valid", "none", "garbage", "expired", "wrong-scope"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
options = st.fixed_dictionaries(
    {},
    optional={
        "language": st.sampled_from(["auto", "zh", "en", "xx", 5]),
        "itn": st.sampled_from([True, False, "yes"]),
        "sample_rate": st.sampled_from([16_000, 8_000, "16k"]),
        "start_offset_ms": st.sampled_from([0, 1500, -1, 2**40]),
        "resume": st.sampled_from(["20260101T000000Z-0123456789ab", "../x", 3]),
    },
)
frames = st.one_of(
    st.binary(min_size=0, max_size=4_000),
    st.integers(min_value=0, max_value=70_000).map(lambda n: b"\x01" * n),  # around the 64 000-byte limit
    st.text(max_size=50),
    json_values.map(json.dumps),
    options.map(json.dumps),
    st.just(json.dumps({"eof": True})),
)
steps = st.lists(st.tuples(frames, st.sampled_from([0.0, 0.0, 0.05, 0.2])), max_size=8)


async def _session(url: str, token: str | None, plan: list[tuple[str | bytes, float]]) -> int | None:
    full = url + (f"?token={token}" if token else "")
    async with connect(full, proxy=None, max_size=2**20, close_timeout=5) as ws:
        try:
            for message, pause in plan:
                await ws.send(message)
                if pause:
                    await asyncio.sleep(pause)
            await ws.send(json.dumps({"eof": True}))
            async for _ in ws:
                pass
        except Exception:
            pass  # the server may close while we still send: the close code is what matters
        await asyncio.wait_for(ws.wait_closed(), 30)
        return ws.close_code


def test_websocket_fuzz_gives_only_defined_close_codes(runtime_server: RuntimeServer) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(token_kind=tokens, plan=steps)
    def run(token_kind: str, plan: list[tuple[str | bytes, float]]) -> None:
        token = {
            "valid": make_token(),
            "none": None,
            "garbage": "not.a.jwt",
            "expired": _expired(),
            "wrong-scope": make_token(scopes=["transcribe"]),
        }[token_kind]
        code = asyncio.run(_session(runtime_server.ws, token, plan))
        assert code in DEFINED_CLOSES, f"close {code} for {token_kind} {plan!r:.300}"
        assert httpx.get(f"{runtime_server.http}/readyz").status_code == 200

    run()
