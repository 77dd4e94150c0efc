"""Request bodies are counted while they stream, so a limit holds without ``Content-Length``.

``Content-Length`` is checked early by the routers, but a chunked body (``Transfer-Encoding: chunked``)
has none, and ``request.form()`` / ``request.body()`` would read all of it. This pure ASGI middleware
counts the bytes the application actually receives and, past the limit, stops the read and answers
413 — for multipart and JSON alike, before the excess is buffered anywhere.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised inside ``receive`` when the body passes the limit; turned into a 413 by the middleware."""


class BodyLimitMiddleware:
    """413 for any HTTP request whose body (counted as it arrives) exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            response = JSONResponse(
                {"detail": f"request body is over {self.max_bytes} bytes; the audio limit was exceeded"},
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
