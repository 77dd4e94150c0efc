"""Development tokens: ``python -m senseops_runtime.tokens --sub alice --anchor a1 --consent``.

Signs with ``SENSEOPS_JWT_HS256_SECRET`` (or ``--rs256-private-key FILE`` for RS256 deployments) and the
audience/issuer the server checks. Prints the token on stdout. For development and tests only:
production tokens come from the app's auth service.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from senseops_runtime import limits
from senseops_runtime.auth import AuthConfig, issue_token


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description="Issue a development JWT for the SenseOps runtime")
    parser.add_argument("--sub", default="dev-user")
    parser.add_argument("--anchor", default="dev-anchor")
    parser.add_argument("--scope", action="append", help="repeatable; default: stream and transcribe")
    parser.add_argument("--consent", action="store_true", help="the streamer consents to recording")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until expiry")
    parser.add_argument("--rs256-private-key", type=Path, help="sign RS256 with this PEM private key")
    parser.add_argument("--audience", default=os.environ.get("SENSEOPS_JWT_AUDIENCE", limits.JWT_AUDIENCE))
    parser.add_argument("--issuer", default=os.environ.get("SENSEOPS_JWT_ISSUER", limits.JWT_ISSUER))
    args = parser.parse_args(argv)
    if args.rs256_private_key:
        key = args.rs256_private_key.read_text()
        config = AuthConfig(rs256_public_key="(verified by the server)", audience=args.audience, issuer=args.issuer)
    else:
        key = os.environ.get("SENSEOPS_JWT_HS256_SECRET", "")
        if not key:
            print("set SENSEOPS_JWT_HS256_SECRET or pass --rs256-private-key", file=sys.stderr)
            return 2
        config = AuthConfig(hs256_secret=key, audience=args.audience, issuer=args.issuer)
    scopes = args.scope or [limits.SCOPE_STREAM, limits.SCOPE_TRANSCRIBE]
    print(issue_token(config, key, args.sub, args.anchor, scopes, args.consent, time.time(), args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
