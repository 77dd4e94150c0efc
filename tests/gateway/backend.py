"""A tiny HTTP + WebSocket backend for the gateway tests (runs inside the test pod network).

    python -m tests.gateway.backend 198.18.0.11:8080 198.18.0.12:8080 ...

One process (uvicorn, real HTTP/1.1 keep-alive and WebSockets) listens on every address given. Each
answer names the address that received it, so a test knows which "pod" served a request:

* ``GET /<anything>``  -> 200, body ``<address>`` (header ``x-backend`` too)
* ``WS  /ws``          -> echoes each text message as ``<address> <message>``

The idle keep-alive timeout (75 s) is longer than HAProxy's, so the proxy never sends a request on a
connection the backend is closing.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    address = str(scope["server"][0])
    if scope["type"] == "http":
        body = address.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"x-backend", body)]})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": f"{address} {message.get('text') or ''}"})


def main(argv: list[str]) -> None:
    sockets = []
    for item in argv:
        host, port = item.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(1024)
        sockets.append(sock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=75,
                                           ws="websockets", lifespan="on"))
    server.run(sockets=sockets)


if __name__ == "__main__":
    main(sys.argv[1:])
