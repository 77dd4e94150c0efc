"""``GET /console``: a live transcription page (microphone → ``/ws/stream`` → partials and finals).

The page is static (HTML, CSS, JS and an AudioWorklet that turns the microphone into 16 kHz s16le
frames); it holds no secret. The caller pastes a token, or passes it in the URL fragment
(``/console#token=<jwt>&language=en``), which browsers never send to the server; ``server=wss://…`` in
the fragment points the page at another runtime.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

router = APIRouter(tags=["console"])

_STATIC = resources.files("senseops_runtime").joinpath("static", "console")
# Only these files are served (no path from the request reaches the file system).
ASSETS = {
    "console.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "pcm-worklet.js": "text/javascript; charset=utf-8",
}
# Scripts and styles only from this server; sockets to any ws(s) server the user types in.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no console asset {name!r}")
    body = _STATIC.joinpath(name).read_bytes()
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/console", include_in_schema=False)
async def console_page() -> Response:
    """The live console page."""
    return _asset("console.html")


@router.get("/console/{name}", include_in_schema=False)
async def console_asset(name: str) -> Response:
    """The page's CSS, script and AudioWorklet."""
    return _asset(name)
