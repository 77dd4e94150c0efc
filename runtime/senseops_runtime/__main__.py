"""``python -m senseops_runtime``: serve the runtime with uvicorn (settings from the environment)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

from senseops_runtime import limits
from senseops_runtime.app import create_app, drain_services
from senseops_runtime.logredact import RedactTokens
from senseops_runtime.services import Services

log = logging.getLogger("senseops.runtime")

# After the drain, uvicorn's own shutdown closes what is left (nothing, normally) within this.
SHUTDOWN_AFTER_DRAIN_S = 3


class DrainingServer(uvicorn.Server):
    """uvicorn, except that SIGTERM/SIGINT first drain the app (see :mod:`senseops_runtime.drain`) while the
    listening socket stays open (a new request gets 503, a new stream 1012, rather than a refused connection),
    and the process then exits 0. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, services: Services) -> None:
        super().__init__(config)
        self.services = services
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in uvicorn's captured signals: it re-raises them after serving, which would turn a
        # clean drain into death by SIGTERM (exit 143).
        if self._loop is None or self._drain is not None or self.should_exit:
            log.warning("signal %s during shutdown: stopping now", signal.Signals(sig).name)
            self.should_exit = self.force_exit = True
            return
        log.info("signal %s: draining", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await drain_services(self.services)
        finally:
            self.should_exit = True


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
    app = create_app()
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=limits.MAX_FRAME_BYTES * 16,
        proxy_headers=True,
        timeout_graceful_shutdown=SHUTDOWN_AFTER_DRAIN_S,
    )
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactTokens())
    DrainingServer(config, app.state.services).run()


if __name__ == "__main__":
    main()
