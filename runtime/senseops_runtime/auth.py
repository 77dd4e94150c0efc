"""JWT verification for streams and HTTP calls.

The accepted algorithm is fixed by the configured key: an HS256 secret accepts only HS256, an RS256
public key only RS256. ``alg=none`` and tokens signed with a different algorithm (including HS256 tokens
forged with the RS256 *public* key as the HMAC secret) are refused before any claim is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jwt

from senseops_runtime import limits

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # same rule as senseops_common.layout.check_id
# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_HS256_SECRET_BYTES = 32


@dataclass(frozen=True)
class AuthConfig:
    """What a token must satisfy. Exactly one of ``hs256_secret`` / ``rs256_public_key`` is set."""

    hs256_secret: str = ""
    rs256_public_key: str = ""
    audience: str = limits.JWT_AUDIENCE
    issuer: str = limits.JWT_ISSUER
    leeway_s: int = limits.JWT_LEEWAY_S

    def __post_init__(self) -> None:
        if self.hs256_secret and self.rs256_public_key:
            raise ValueError(
                "both SENSEOPS_JWT_HS256_SECRET and SENSEOPS_JWT_RS256_PUBLIC_KEY are set; set exactly one "
                "(two keys would accept two algorithms)"
            )
        if self.hs256_secret and len(self.hs256_secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ValueError(
                f"SENSEOPS_JWT_HS256_SECRET is {len(self.hs256_secret.encode())} bytes; HS256 needs at least "
                f"{MIN_HS256_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
            )

    @property
    def algorithm(self) -> str:
        """The single algorithm this configuration accepts."""
        if self.rs256_public_key:
            return "RS256"
        if self.hs256_secret:
            return "HS256"
        raise ValueError("no JWT key configured: set SENSEOPS_JWT_HS256_SECRET or SENSEOPS_JWT_RS256_PUBLIC_KEY")

    @property
    def key(self) -> str:
        return self.rs256_public_key or self.hs256_secret


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token."""

    subject: str
    anchor_id: str
    scopes: frozenset[str]
    consent: bool  # the streamer agreed to have audio recorded for training


@dataclass(frozen=True)
class AuthRefusal:
    """Why a token was refused; ``reason`` is safe to show to the client. ``status`` is the HTTP answer:
    401 when the token is missing or invalid, 403 when it is valid but lacks the scope."""

    reason: str
    status: int = 401


def _scopes_from_claims(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scopes", claims.get("scope", []))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return frozenset(raw)
    return frozenset()


def verify_token(token: str | None, config: AuthConfig, required_scope: str, now: float) -> Principal | AuthRefusal:
    """Check a bearer token and return the caller, or the reason it is refused. Pure given ``now``."""
    if not token:
        return AuthRefusal("missing token: pass ?token=<jwt> or an Authorization: Bearer header")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return AuthRefusal("malformed token")
    alg = header.get("alg")
    if alg != config.algorithm:
        # Covers alg=none and algorithm confusion; never let the token pick the verification method.
        return AuthRefusal(f"token algorithm {alg!r} not accepted (expected {config.algorithm})")
    try:
        claims = jwt.decode(
            token,
            config.key,
            algorithms=[config.algorithm],
            audience=config.audience,
            issuer=config.issuer,
            leeway=config.leeway_s,
            # exp/nbf are checked below against the caller's clock so this function stays pure.
            options={
                "require": ["exp", "sub", "aud", "iss"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.ExpiredSignatureError:
        return AuthRefusal("token expired")
    except jwt.ImmatureSignatureError:
        return AuthRefusal("token not valid yet (nbf)")
    except jwt.InvalidAudienceError:
        return AuthRefusal(f"token audience is not {config.audience!r}")
    except jwt.InvalidIssuerError:
        return AuthRefusal(f"token issuer is not {config.issuer!r}")
    except jwt.MissingRequiredClaimError as exc:
        return AuthRefusal(f"token lacks the {exc.claim!r} claim")
    except jwt.InvalidSignatureError:
        return AuthRefusal("token signature invalid")
    except jwt.PyJWTError:
        return AuthRefusal("token invalid")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or (nbf is not None and not isinstance(nbf, (int, float))):
        return AuthRefusal("token exp/nbf must be numbers (seconds since the epoch)")
    if now > exp + config.leeway_s:
        return AuthRefusal("token expired")
    if nbf is not None and now + config.leeway_s < nbf:
        return AuthRefusal("token not valid yet (nbf)")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        return AuthRefusal("token lacks the 'sub' claim")
    scopes = _scopes_from_claims(claims)
    if required_scope not in scopes and limits.SCOPE_ADMIN not in scopes:
        return AuthRefusal(f"token lacks the {required_scope!r} scope", status=403)
    anchor = claims.get("anchor_id") or subject
    if not isinstance(anchor, str) or not SAFE_ID.match(anchor):
        # anchor_id becomes part of object keys; refuse anything that is not a plain id.
        return AuthRefusal("token anchor_id (or sub) must be 1-128 of A-Z a-z 0-9 . _ - starting alphanumeric")
    return Principal(
        subject=subject,
        anchor_id=anchor,
        scopes=scopes,
        consent=claims.get("consent") is True,
    )


def issue_token(
    config: AuthConfig,
    signing_key: str,
    subject: str,
    anchor_id: str,
    scopes: list[str],
    consent: bool,
    now: float,
    ttl_s: int = 3600,
) -> str:
    """Sign a token for development and tests (HS256 secret, or an RS256 *private* key)."""
    claims = {
        "sub": subject,
        "anchor_id": anchor_id,
        "scopes": scopes,
        "consent": consent,
        "aud": config.audience,
        "iss": config.issuer,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + ttl_s,
    }
    return jwt.encode(claims, signing_key, algorithm=config.algorithm)
