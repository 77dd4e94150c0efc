"""The live console page in headless Chromium: fake microphone (espeak-ng speech) → runtime → transcript.

The screenshot is kept as a test artifact in out/test-artifacts/console.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from senseops_common import speech
from tests.runtime.browser import Browser, open_page
from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, wav_bytes
from tests.runtime.server import REPO, RuntimeServer

ARTIFACTS = REPO / "out" / "test-artifacts"


def test_console_assets_served_with_a_strict_policy(runtime_server: RuntimeServer) -> None:
    page = httpx.get(f"{runtime_server.http}/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("console.js", "console.css", "pcm-worklet.js"):
        assert httpx.get(f"{runtime_server.http}/console/{asset}").status_code == 200, asset
    assert httpx.get(f"{runtime_server.http}/console/..%2Fapp.py").status_code == 404
    assert httpx.get(f"{runtime_server.http}/console/secret.txt").status_code == 404


def test_console_transcribes_the_microphone(runtime_server: RuntimeServer, tmp_path: Path) -> None:
    # Speech then enough silence for the VAD to close the segment; Chromium loops the file.
    audio = tmp_path / "speech.wav"
    audio.write_bytes(wav_bytes(speech.pad_with_silence(ENGLISH.synthesize(), 0.8, 2.0)))
    token = make_token()  # a fresh subject: its own audio budget
    url = f"{runtime_server.http}/console#token={token}&language=en&autostart=1"
    with Browser(tmp_path / "profile", audio, tmp_path / "chromium.log") as browser:
        text, state, tags = asyncio.run(_transcribe(browser, url, ARTIFACTS / "console.png"))
    assert ENGLISH.text_itn in text, f"page shows {text!r} (state {state!r})"
    assert state in ("live", "idle"), state
    assert "en" in tags


async def _transcribe(browser: Browser, url: str, screenshot: Path) -> tuple[str, str, list[str]]:
    ws, page = await open_page(browser)
    try:
        await page.call("Page.navigate", url=url)
        await page.wait_for("document.getElementById('state').textContent === 'live'", 30)
        text = await page.wait_for(
            "[...document.querySelectorAll('#finals .text')].map(e => e.textContent).join(' | ')", 90
        )
        state = await page.evaluate("document.getElementById('state').textContent")
        tags = await page.evaluate("[...document.querySelectorAll('#finals .tag')].map(e => e.textContent)")
        await page.screenshot(screenshot)
        return str(text), str(state), list(tags)
    finally:
        await ws.close()


def test_console_shows_a_refused_token_and_does_not_retry(runtime_server: RuntimeServer, tmp_path: Path) -> None:
    audio = tmp_path / "speech.wav"
    audio.write_bytes(wav_bytes(speech.pad_with_silence(ENGLISH.synthesize(), 0.5, 0.5)))
    url = f"{runtime_server.http}/console#token=not-a-jwt&autostart=1"
    with Browser(tmp_path / "profile", audio, tmp_path / "chromium.log") as browser:
        state, reason = asyncio.run(_refused(browser, url))
    assert state == "error", (state, reason)
    assert reason.startswith("closed 1008"), reason


async def _refused(browser: Browser, url: str) -> tuple[str, str]:
    ws, page = await open_page(browser)
    try:
        await page.call("Page.navigate", url=url)
        state = await page.wait_for(
            "['error', 'reconnecting'].includes(document.getElementById('state').textContent) &&"
            " document.getElementById('state').textContent",
            30,
        )
        reason = await page.evaluate("document.getElementById('reason').textContent")
        return str(state), str(reason)
    finally:
        await ws.close()


class CuttableProxy:
    """A loopback TCP proxy to the runtime whose open connections can be cut (a dropped network)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server:
            self.server.close()


def test_console_reconnects_after_a_drop_and_keeps_segment_times(runtime_server: RuntimeServer, tmp_path: Path) -> None:
    audio = tmp_path / "speech.wav"
    audio.write_bytes(wav_bytes(speech.pad_with_silence(ENGLISH.synthesize(), 0.8, 2.0)))
    with Browser(tmp_path / "profile", audio, tmp_path / "chromium.log") as browser:
        reconnects, state, times = asyncio.run(_reconnect(browser, runtime_server))
    assert reconnects >= 1 and state == "live", (reconnects, state)
    assert len(times) >= 2, times
    (_, first_end), (second_start, _) = times[0], times[-1]
    assert second_start > first_end  # the new connection continues the timeline (start_offset_ms)


async def _reconnect(browser: Browser, server: RuntimeServer) -> tuple[int, str, list[tuple[int, int]]]:
    proxy = CuttableProxy(server.port)
    await proxy.start()
    ws, page = await open_page(browser)
    finals = "[...document.querySelectorAll('#finals li')].length"
    state = "document.getElementById('state').textContent"
    try:
        url = (
            f"{server.http}/console#token={make_token()}&language=en&autostart=1"
            f"&server=ws://127.0.0.1:{proxy.port}/ws/stream"
        )
        await page.call("Page.navigate", url=url)
        assert await page.wait_for(f"{finals} >= 1", 90), await page.evaluate(state)
        proxy.cut()
        # The page counts lost connections (shown in its footer); then it must be live again.
        reconnects = int(await page.wait_for("s.reconnects >= 1 && s.reconnects", 20) or 0)
        live = str(await page.wait_for(f"s.reconnects >= 1 && {state} === 'live' && {state}", 30))
        assert await page.wait_for(f"{finals} >= 2", 90), await page.evaluate(state)
        # Times as the page shows them come from the finals' start_ms/end_ms; read them from the messages.
        times = await page.evaluate(
            "[...document.querySelectorAll('#finals li')].map(li => li.dataset.startMs + ',' + li.dataset.endMs)"
        )
        return reconnects, live, [(int(a), int(b)) for a, b in (t.split(",") for t in times)]
    finally:
        await ws.close()
        await proxy.stop()
