"""``python -m senseops_runtime``: serve the runtime with uvicorn (settings from the environment)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from senseops_runtime import limits
from senseops_runtime.app import create_app
from senseops_runtime.logredact import RedactTokens


def main() -> None:
    """Parse host/port and run uvicorn."""
    parser = argparse.ArgumentParser(description="SenseOps inference runtime")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # ws_max_size sits above our own frame bound so an oversize frame reaches the session and gets a
    # 1007 with a reason instead of tripping the protocol limit first.
    config = uvicorn.Config(
        create_app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=limits.MAX_FRAME_BYTES * 16,
        proxy_headers=True,
    )
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactTokens())
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
