"""Secrets from files, start-up checks of the JWT keys, 401 vs 403, and tokens kept out of access logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from uvicorn.logging import AccessFormatter, DefaultFormatter

from senseops_runtime.auth import AuthConfig, verify_token
from senseops_runtime.logredact import RedactTokens, redact
from senseops_runtime.services import Services
from senseops_runtime.settings import RuntimeSettings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
LONG_SECRET = "0123456789abcdef0123456789abcdef"


def test_file_secret_is_stripped_of_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "hs256-secret"
    secret.write_text(LONG_SECRET + "\n")
    settings = RuntimeSettings.from_env({"SENSEOPS_JWT_HS256_SECRET_FILE": str(secret)})
    assert settings.jwt_hs256_secret == LONG_SECRET


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SENSEOPS_JWT_HS256_SECRET": "short"}, "is 5 bytes; HS256 needs at least 32"),
        (
            {"SENSEOPS_JWT_HS256_SECRET": LONG_SECRET, "SENSEOPS_JWT_RS256_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"},
            "set exactly one",
        ),
    ],
    ids=["short HS256 secret", "both keys"],
)
def test_bad_key_configuration_is_a_start_up_error(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Services.from_settings(RuntimeSettings.from_env(env))


def test_valid_token_without_the_scope_is_403_and_a_bad_token_401() -> None:
    import time

    from senseops_runtime.auth import issue_token

    config = AuthConfig(hs256_secret=LONG_SECRET)
    now = time.time()
    token = issue_token(config, LONG_SECRET, "s", "a", ["stream"], False, now)
    lacking = verify_token(token, config, "admin", now)
    garbage = verify_token("x.y.z", config, "admin", now)
    assert (getattr(lacking, "status", None), getattr(garbage, "status", None)) == (403, 401)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/ws/stream?token={JWT}", "/ws/stream?token=<redacted>"),
        (f"/ws/stream?lang=zh&token={JWT}&x=1", "/ws/stream?lang=zh&token=<redacted>&x=1"),
        (f"/x?access_token={JWT}", "/x?access_token=<redacted>"),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer <redacted>"),
        ("/ws/stream?notoken=1", "/ws/stream?notoken=1"),
        ("/api/transcribe", "/api/transcribe"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def _format(formatter: logging.Formatter, msg: str, args: tuple[object, ...]) -> str:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)
    assert RedactTokens().filter(record) is True
    return formatter.format(record)


def test_uvicorn_access_and_websocket_lines_keep_their_shape_without_the_token() -> None:
    access = _format(
        AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False),
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/ws/stream?token={JWT}", "1.1", 101),
    )
    assert access == '127.0.0.1:5000 - "GET /ws/stream?token=<redacted> HTTP/1.1" 101 Switching Protocols'
    websocket = _format(
        DefaultFormatter("%(message)s", use_colors=False),
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/ws/stream?token={JWT}"),
    )
    assert websocket == '127.0.0.1:5000 - "WebSocket /ws/stream?token=<redacted>" [accepted]'
