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
