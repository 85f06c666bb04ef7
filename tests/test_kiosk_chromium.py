"""The /kiosk page in real headless Chromium (driven over DevTools) against the appliance in a
call with ``rtedge peer``: the reply's words reach the page's text within 300 ms of each
transcript event, a finger on the button (a real touch event) makes a push-to-talk turn, the
keyboard works the button too, and after the daemon stops the page says "Device offline" and
comes back by itself when a new daemon starts on the same port. Screenshots of the page go to
``tests/artifacts/kiosk/``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

pytest.importorskip("rtedge.peer.server", reason="needs the local peer (rtedge peer)")

from rtedge.app import Appliance  # noqa: E402
from rtedge.state import State, Turn  # noqa: E402
from tests.audio.alsa_rig import feed_mic, sine  # noqa: E402
from tests.cdp import CHROMIUM, Page, chromium_page  # noqa: E402
from tests.display.kiosk_rig import (  # noqa: E402
    RATE,
    REPLY,
    KioskRig,
    artifacts_dir,
    kiosk_rig,
    start,
)
from tests.poll import until  # noqa: E402
from tests.support import free_port, scaled  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

OUT = artifacts_dir("kiosk")
WATCH_TEXT = """(() => {
  window.__log = [];
  const el = document.getElementById("assistant");
  new MutationObserver(() => window.__log.push([Date.now() / 1000, el.textContent]))
    .observe(el, {childList: true, characterData: true, subtree: true});
  return true;
})()"""


async def page_until(page: Page, expression: str, within: float = 15) -> object:
    """Poll a page expression until it is truthy (the page's own state, not a fixed wait). While
    the page is still loading (no body yet) an error means "not yet"."""
    errors: list[RuntimeError] = []

    async def value() -> object:
        try:
            return await page.evaluate(expression)
        except RuntimeError as exc:
            errors[:] = [exc]
            return None

    try:
        return await until(value, within, f"the page to show {expression}", step=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last error: {errors[-1] if errors else None})") from None


def record_transcripts(state: State) -> list[tuple[float, str]]:
    """Wall-clock time of each transcript event as the daemon's State takes it."""
    events: list[tuple[float, str]] = []

    def listener(s: State) -> None:
        text = s.transcript_assistant
        if text and (not events or events[-1][1] != text):
            events.append((time.time(), text))

    state.subscribe(listener)
    return events


async def test_kiosk_page_captions_touch_to_talk_and_restart(tmp_path: Path) -> None:
    async with kiosk_rig(tmp_path) as rig:
        port = free_port()
        settings = rig.settings(
            port, display={"backend": "mjpeg", "kiosk_page": True, "caption_clear_s": 120}
        )
        app = Appliance(settings)
        events = record_transcripts(app.state)
        url = f"http://127.0.0.1:{port}/kiosk"
        handles = [await start(app)]
        try:
            async with chromium_page(url, 800, 600) as page:
                await conversation_through_the_page(rig, app, page, events)
                # The daemon stops: the page says so.
                boot = await page.evaluate("document.getElementById('avatar').src")
                await handles[0].stop()
                await page_until(page, "document.body.classList.contains('offline')", within=15)
                assert "Device offline" in await page.evaluate("document.body.innerText")
                await page.screenshot(OUT / "page-offline.png")

                # A new daemon on the same port: the page comes back by itself.
                app2 = Appliance(settings)
                handles.append(await start(app2))
                await page_until(
                    page,
                    "!document.body.classList.contains('offline')"
                    " && document.body.dataset.state === 'idle'",
                    within=20,
                )
                # a new daemon process: the avatar stream was restarted
                assert await page.evaluate("document.getElementById('avatar').src") != boot
                await page.mouse("#talk", "mousePressed")
                await until(lambda: app2.state.ptt_held, within=5)
                await page.mouse("#talk", "mouseReleased")
                await until(lambda: not app2.state.ptt_held, within=5)
        finally:
            for handle in handles:
                await handle.stop()
    print(f"kiosk page screenshots: {OUT}")


async def conversation_through_the_page(
    rig: KioskRig, app: Appliance, page: Page, events: list[tuple[float, str]]
) -> None:
    await page_until(page, "document.body.dataset.state === 'idle'")
    assert await page.evaluate("document.body.classList.contains('offline')") is False
    assert "/avatar.mjpeg" in await page.evaluate("document.getElementById('avatar').src")
    await page.evaluate(WATCH_TEXT)
    await page.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=1)

    # A finger on the button: press; the user speaks; the finger lifts: release.
    await page.touch("#talk", "touchStart")
    await until(lambda: app.state.turn is Turn.LISTENING, within=5)
    assert await page.evaluate("talk.getAttribute('aria-pressed')") == "true"
    await feed_mic(rig.feeder, sine(300, 0.8, RATE, 0.3))  # held while speaking
    await asyncio.sleep(0.2)  # and a moment past it: the test's input
    await page.touch("#talk", "touchEnd")
    await until(lambda: app.state.turn is Turn.SPEAKING, within=15)
    await page_until(page, f"assistant.textContent === {REPLY!r}", within=20)
    await page_until(page, "document.body.dataset.state === 'idle'", within=20)
    await page.screenshot(OUT / "page.png")

    log = await page.evaluate("window.__log")
    lags = []
    for at, text in events:
        seen = [t for t, shown in log if shown.startswith(text)]
        assert seen, f"page never showed {text!r}"
        lags.append(min(seen) - at)
    lags.sort()
    print(
        f"\npage text after transcript event: max {lags[-1] * 1e3:.0f} ms, "
        f"median {lags[len(lags) // 2] * 1e3:.0f} ms over {len(lags)} events"
    )
    assert len(events) >= 5  # the reply streamed as deltas
    assert lags[-1] <= scaled(0.3)

    # The keyboard works the button as well (Space held, then let go).
    await page.evaluate("talk.focus()")
    await page.call("Input.dispatchKeyEvent", type="keyDown", key=" ", code="Space")
    await until(lambda: app.state.ptt_held, within=5)
    await page.call("Input.dispatchKeyEvent", type="keyUp", key=" ", code="Space")
    await until(lambda: not app.state.ptt_held, within=5)
