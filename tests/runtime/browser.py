"""Headless Debian Chromium driven over the DevTools protocol (loopback only), for page tests.

Chromium starts with a fresh profile, no network features of its own (no sync, updates, QUIC or
background requests) and a fake microphone that plays a WAV file in a loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1100,800",
    # Belt and braces for the loopback-only rule: no proxy, and no host name resolves except loopback.
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)


def chromium_binary() -> str:
    """Debian's chromium (`make debian-chromium`)."""
    found = shutil.which("chromium")
    if not found:
        raise AssertionError("chromium not found: run `make console-deps` (installs Debian chromium)")
    return found


class Browser:
    """One Chromium process with one page; use as a context manager."""

    def __init__(self, profile: Path, fake_audio: Path, log_path: Path) -> None:
        self.profile = profile
        self.fake_audio = fake_audio
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        active = self.profile / "DevToolsActivePort"
        active.unlink(missing_ok=True)  # a reused profile's file names an old port
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                f"--use-file-for-fake-audio-capture={self.fake_audio}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not active.exists() or not active.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start; log:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        self.port = int(active.read_text().split()[0])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def page_socket(self) -> str:
        """The DevTools WebSocket of the first page target."""
        targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=10).json()
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


class Page:
    """Minimal DevTools client: send commands, evaluate expressions, capture screenshots."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float) -> Any:
        """Poll ``expression`` until it is truthy; return its last value either way.

        An exception counts as "not yet" (the page may still be loading), except on the last try.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = await self.evaluate(expression)
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
                value = None
            if value or time.monotonic() >= deadline:
                return value
            await asyncio.sleep(0.5)

    async def screenshot(self, path: Path) -> None:
        data = await self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))


async def open_page(browser: Browser) -> tuple[Any, Page]:
    """Connect to the browser's page; the caller closes the returned socket."""
    ws = await websockets.connect(browser.page_socket(), max_size=32 * 1024 * 1024)
    page = Page(ws)
    await page.call("Page.enable")
    await page.call("Runtime.enable")
    return ws, page
