"""Keep tokens out of the logs without breaking a log line.

uvicorn's access log formats ``record.args`` as ``(client, method, path, http_version, status)``, and its
WebSocket lines print the path too, query string included — so ``/ws/stream?token=<jwt>`` would land in
the logs. The filter rewrites ``token=…`` (and ``access_token=…``) inside each string argument and in the
message template, keeping the record's shape so every formatter still works.
"""

from __future__ import annotations

import logging
import re

_TOKEN_IN_QUERY = re.compile(r"((?:^|[?&\s\"'])(?:access_)?token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """``text`` with query-string tokens and bearer credentials replaced by ``<redacted>``."""
    return _BEARER.sub(r"\1" + REDACTED, _TOKEN_IN_QUERY.sub(r"\1" + REDACTED, text))


def _redact_arg(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """A logging filter (attach to ``uvicorn.access`` and ``uvicorn.error``); it never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True
