"""``GET /kiosk``: a self-contained page for the kiosk's own browser (avatar, live captions, state,
touch-to-talk), and ``GET /kiosk/events``, the Server-Sent Events stream that feeds it from State.

Both routes sit behind the health server's Host/Origin guard like every other route. The page's
button posts to ``/ptt/press`` and ``/ptt/release``: same origin, so the guard lets it through,
while a foreign page still cannot press. The page may not be framed (``frame-ancestors 'none'``):
a framed copy would be same-origin too, and a foreign page could trick a touch into a press.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from importlib import resources
from typing import Any

from aiohttp import web

from rtedge.display import palette
from rtedge.display.captions import CaptionPacer, CaptionView
from rtedge.settings import Settings
from rtedge.state import Connection, State

log = logging.getLogger(__name__)

#: Streams at most; a new one ends the oldest (a kiosk that reconnects leaves stale ones behind).
MAX_STREAMS = 8
#: Characters of each side's words sent to the page (the conversation keeps 500).
MAX_TEXT = 2000
#: A comment line this often keeps proxies and the page's watchdog (25 s) content.
KEEPALIVE_S = 10.0
#: State written without ``State.update()`` (no listener call) is still seen this soon.
POLL_S = 0.25


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def build_page(*, mode: str, avatar: bool, renew_s: float) -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy (inline script and style allowed by
    hash, nothing from anywhere else)."""
    html = resources.files("rtedge").joinpath("kiosk_page.html").read_text("utf-8")
    colours = {
        "BACKGROUND": palette.BACKGROUND,
        "USER_TEXT": palette.USER_TEXT,
        "ASSISTANT_TEXT": palette.ASSISTANT_TEXT,
        "MUTED_TEXT": palette.MUTED_TEXT,
        "BUTTON_BG": palette.BUTTON_BG,
        "BUTTON_TEXT": palette.BUTTON_TEXT,
        "BUTTON_ACTIVE_BG": palette.BUTTON_ACTIVE_BG,
        **{f"IND_{k.upper()}": v for k, v in palette.INDICATOR.items()},
    }
    for key, value in colours.items():
        html = html.replace(f"@{key}@", value)
    label = "Hold to talk" if mode == "hold" else "Tap to talk"
    html = html.replace("@TALK_LABEL@", label).replace("@PTT_MODE@", mode)
    html = html.replace("@AVATAR@", "1" if avatar else "0").replace(
        "@RENEW_MS@", str(int(renew_s * 1000))
    )
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(_csp_hash(s) for s in scripts),
            "style-src " + " ".join(_csp_hash(s) for s in styles),
            "img-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    return html, csp


class KioskPage:
    def __init__(self, state: State, settings: Settings) -> None:
        self.state = state
        self.pacer = CaptionPacer(
            pace_cps=None, clear_after_s=settings.display.caption_clear_s, clock=time.monotonic
        )
        self.html, self.csp = build_page(
            mode=settings.ptt.mode,
            avatar=settings.display.backend == "mjpeg",
            renew_s=settings.ptt.max_hold_s / 2,
        )
        self.boot = uuid.uuid4().hex[:12]  # a new daemon process: the page restarts the avatar
        self.evicted = 0
        self.streams_opened = 0
        self.version = 0
        self.payload = self._payload()
        self._changed = asyncio.Event()
        self._streams: list[asyncio.Event] = []  # one stop flag per open stream, oldest first
        state.subscribe(lambda _: self.refresh())

    def _payload(self) -> dict[str, Any]:
        view: CaptionView = self.pacer.update(self.state)
        ind = view.indicator
        return {
            "state": ind.name,
            "label": ind.label,
            "user": view.user[-MAX_TEXT:],
            "assistant": view.assistant[-MAX_TEXT:],
            "held": self.state.ptt_held,
            "connected": self.state.connection is Connection.CONNECTED,
            "boot": self.boot,
        }

    def refresh(self) -> None:
        """Recompute from State; wake the streams when anything they show changed."""
        payload = self._payload()
        if payload != self.payload:
            self.payload = payload
            self.version += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/kiosk", self.handle_page)
        app.router.add_get("/kiosk/events", self.handle_events)
        app.on_shutdown.append(self._on_shutdown)

    async def handle_page(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self.html,
            content_type="text/html",
            headers={
                "Content-Security-Policy": self.csp,
                "X-Frame-Options": "DENY",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    async def handle_events(self, request: web.Request) -> web.StreamResponse:
        stop = asyncio.Event()
        self.streams_opened += 1
        self._streams.append(stop)
        while len(self._streams) > MAX_STREAMS:
            self._streams.pop(0).set()
            self.evicted += 1
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        try:
            await resp.prepare(request)
            # The browser retries a lost stream after a second by itself.
            await resp.write(b"retry: 1000\n\n")
            sent = -1
            idle_since = time.monotonic()
            while not stop.is_set():
                self.refresh()  # catches State fields written without update()
                if self.version != sent:
                    sent = self.version
                    data = json.dumps(self.payload, separators=(",", ":"))
                    await resp.write(f"id: {sent}\ndata: {data}\n\n".encode())
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= KEEPALIVE_S:
                    await resp.write(b": keepalive\n\n")
                    idle_since = time.monotonic()
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_S):
                        await _first(changed, stop)
        except (ConnectionError, RuntimeError):
            pass  # the page went away
        finally:
            with contextlib.suppress(ValueError):
                self._streams.remove(stop)
        return resp

    async def _on_shutdown(self, app: web.Application) -> None:
        # Streams never end by themselves; without this the server's shutdown waits them out.
        for stop in self._streams:
            stop.set()


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


__all__ = ["KioskPage", "build_page"]
