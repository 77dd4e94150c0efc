"""Upload limits hold for chunked bodies (no Content-Length): the server counts the body as it streams
and answers 413 at the limit, long before the client has sent everything, for multipart and JSON alike."""

from __future__ import annotations

import select
import socket

import httpx
import pytest

from tests.runtime.conftest import MAX_UPLOAD_BYTES, make_token
from tests.runtime.server import RuntimeServer

CHUNK = 64 * 1024
TOTAL = 16 * MAX_UPLOAD_BYTES  # what the client would send if nobody stopped it


def _chunked_post(port: int, content_type: str, prefix: bytes) -> tuple[int, int]:
    """POST a chunked body (``prefix`` then zeros) until the server answers; return (status, bytes sent)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # count what the server took, not our buffer
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            "POST /api/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: {content_type}\r\nAuthorization: Bearer {make_token()}\r\n\r\n"
        ).encode()
    )
    sent = 0
    reply = b""
    body = prefix
    try:
        while sent < TOTAL:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered mid-upload
            piece = body[:CHUNK] if body else b"\0" * CHUNK
            body = body[len(piece):]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # closed after its answer, or stopped reading: read the answer below
    sock.settimeout(30)
    try:
        while b"\r\n" not in reply:
            data = sock.recv(4096)
            if not data:
                break
            reply += data
    finally:
        sock.close()
    return int(reply.split(b" ", 2)[1]), sent


MULTIPART_HEAD = (
    b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
)


@pytest.mark.parametrize(
    ("content_type", "prefix"),
    [("multipart/form-data; boundary=XyZ", MULTIPART_HEAD), ("application/json", b'{"file_path": "')],
    ids=["multipart", "json"],
)
def test_chunked_body_over_the_limit_is_refused_while_it_streams(
    runtime_server: RuntimeServer, content_type: str, prefix: bytes
) -> None:
    status, sent = _chunked_post(runtime_server.port, content_type, prefix)
    assert status == 413
    # Kernel socket buffers hold a few MB on loopback; without the limit the whole body is read first.
    assert sent < TOTAL // 2, f"the server took {sent} of {TOTAL} bytes before refusing"
    assert httpx.get(f"{runtime_server.http}/readyz").status_code == 200
