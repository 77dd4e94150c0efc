"""Table tests of JWT verification: every way a token can be wrong, and the right ones."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from senseops_runtime.auth import AuthConfig, AuthRefusal, Principal, issue_token, verify_token
from tests.runtime.helpers import rsa_pair

NOW = 1_800_000_000.0
SECRET = "test-secret-that-is-long-enough-for-hs256"
HS = AuthConfig(hs256_secret=SECRET)




PRIVATE, PUBLIC = rsa_pair()
RS = AuthConfig(rs256_public_key=PUBLIC)


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sub": "user-1",
        "anchor_id": "anchor-1",
        "scopes": ["stream", "transcribe"],
        "consent": True,
        "aud": "senseops-runtime",
        "iss": "senseops",
        "nbf": int(NOW) - 10,
        "exp": int(NOW) + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs(**overrides: object) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def unsigned(**overrides: object) -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(**overrides))}."


REFUSED = [
    ("missing", HS, None, "missing token"),
    ("empty", HS, "", "missing token"),
    ("garbage", HS, "not-a-jwt", "malformed token"),
    ("alg none", HS, unsigned(), "algorithm 'none' not accepted"),
    ("expired", HS, hs(exp=int(NOW) - 60), "token expired"),
    ("not yet valid", HS, hs(nbf=int(NOW) + 600), "not valid yet"),
    ("wrong audience", HS, hs(aud="someone-else"), "audience"),
    ("wrong issuer", HS, hs(iss="evil"), "issuer"),
    ("no exp", HS, hs(exp=None), "'exp'"),
    ("no sub", HS, hs(sub=None), "'sub'"),
    ("forged secret", HS, jwt.encode(claims(), "another-secret-of-some-length-0000", algorithm="HS256"), "signature"),
    ("no scope", HS, hs(scopes=["transcribe"]), "'stream' scope"),
    ("anchor with slash", HS, hs(anchor_id="../etc"), "anchor_id"),
    ("exp not a number", HS, hs(exp="tomorrow"), "token"),
    ("rs256 config, hs256 token", RS, hs(), "algorithm 'HS256' not accepted"),
    ("hs256 config, rs256 token", HS, jwt.encode(claims(), PRIVATE, algorithm="RS256"), "'RS256' not accepted"),
]


def _confusion_token() -> str:
    """HS256 over the claims with the PEM public key as the secret (PyJWT refuses to build this itself)."""
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(PUBLIC.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(("name", "config", "token", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(name: str, config: AuthConfig, token: str | None, reason: str) -> None:
    verdict = verify_token(token, config, "stream", NOW)
    assert isinstance(verdict, AuthRefusal), verdict
    assert reason in verdict.reason


def test_algorithm_confusion_refused() -> None:
    verdict = verify_token(_confusion_token(), RS, "stream", NOW)
    assert isinstance(verdict, AuthRefusal)
    assert "HS256" in verdict.reason


@pytest.mark.parametrize(
    ("config", "token", "expected"),
    [
        (HS, hs(), Principal("user-1", "anchor-1", frozenset({"stream", "transcribe"}), True)),
        (
            HS,
            hs(consent=None, anchor_id=None),
            Principal("user-1", "user-1", frozenset({"stream", "transcribe"}), False),
        ),
        (
            HS,
            hs(scopes=None, scope="stream extra"),
            Principal("user-1", "anchor-1", frozenset({"stream", "extra"}), True),
        ),
        (HS, hs(scopes=["admin"], consent="yes"), Principal("user-1", "anchor-1", frozenset({"admin"}), False)),
        (
            RS,
            jwt.encode(claims(), PRIVATE, algorithm="RS256"),
            Principal("user-1", "anchor-1", frozenset({"stream", "transcribe"}), True),
        ),
        (
            HS,
            hs(exp=int(NOW) - 2),
            Principal("user-1", "anchor-1", frozenset({"stream", "transcribe"}), True),
        ),  # leeway
    ],
)
def test_accepted(config: AuthConfig, token: str, expected: Principal) -> None:
    assert verify_token(token, config, "stream", NOW) == expected


def test_issue_token_round_trip() -> None:
    now = time.time()
    token = issue_token(RS, PRIVATE, "dev", "anchor-9", ["stream"], True, now)
    assert verify_token(token, RS, "stream", now) == Principal("dev", "anchor-9", frozenset({"stream"}), True)


def test_no_key_configured_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="SENSEOPS_JWT_HS256_SECRET"):
        _ = AuthConfig().algorithm
