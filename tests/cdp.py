"""Real headless Chromium driven over the DevTools protocol (a WebSocket, via aiohttp): read the
page, dispatch real touch and mouse input, take screenshots. No browser-automation package."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.browser import CHROMIUM as CHROMIUM
from tests.browser import chromium
from tests.poll import scaled

PIPE = asyncio.subprocess.PIPE


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            fut = self._waiting.pop(data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        await self.ws.send_str(json.dumps({"id": self._next, "method": method, "params": params}))
        async with asyncio.timeout(scaled(20)):
            data = await fut
        if "error" in data:
            raise RuntimeError(f"{method}: {data['error']}")
        result: dict[str, Any] = data.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def center(self, selector: str) -> tuple[float, float]:
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        return float(box[0]), float(box[1])

    async def touch(self, selector: str, kind: str) -> None:
        """``kind``: touchStart or touchEnd, at the middle of the element (a finger)."""
        x, y = await self.center(selector)
        points = [{"x": x, "y": y}] if kind == "touchStart" else []
        await self.call("Input.dispatchTouchEvent", type=kind, touchPoints=points)

    async def mouse(self, selector: str, kind: str) -> None:
        """``kind``: mousePressed or mouseReleased, left button, at the element's middle."""
        x, y = await self.center(selector)
        await self.call(
            "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
        )

    async def screenshot(self, path: Path) -> Path:
        data = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))
        return path

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.ws.close()


@contextlib.asynccontextmanager
async def chromium_page(url: str, width: int = 800, height: int = 600) -> AsyncIterator[Page]:
    """Headless Chromium showing ``url``; the page's DevTools session."""
    flags = ("--remote-debugging-port=0", "--remote-allow-origins=*")
    async with chromium(url, *flags, f"--window-size={width},{height}", stderr=PIPE) as proc:
        assert proc.stderr is not None
        async with asyncio.timeout(scaled(30)):
            port = await _devtools_port(proc.stderr)
        # keep reading stderr so Chromium never blocks on a full pipe
        drain = asyncio.create_task(_drain(proc.stderr))
        try:
            async with aiohttp.ClientSession() as http:
                ws_url = None
                async with asyncio.timeout(scaled(20)):
                    while ws_url is None:
                        async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                            targets = await resp.json()
                        pages = [t for t in targets if t.get("type") == "page"]
                        if pages:
                            ws_url = pages[0]["webSocketDebuggerUrl"]
                        else:
                            await asyncio.sleep(0.1)  # the page target is not there yet
                ws = await http.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024)
                page = Page(ws)
                try:
                    yield page
                finally:
                    await page.close()
        finally:
            drain.cancel()


async def _devtools_port(stderr: asyncio.StreamReader) -> int:
    while line := await stderr.readline():
        m = re.search(rb"DevTools listening on ws://[^:]+:(\d+)/", line)
        if m:
            return int(m.group(1))
    raise RuntimeError("chromium exited before DevTools came up")


async def _drain(stderr: asyncio.StreamReader) -> None:
    while await stderr.read(65536):
        pass
