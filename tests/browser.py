"""Real headless Chromium for tests: one launch (flags, profile, cleanup), and the small web
sites its pages load and report back to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from tests.poll import scaled

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Headless, no sandbox (root in CI), and none of the background traffic of a desktop browser.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.asynccontextmanager
async def chromium(
    url: str, *extra: str, stderr: int = asyncio.subprocess.DEVNULL
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Headless Chromium showing ``url`` with its own fresh profile, killed (by its handle) and
    the profile removed on the way out. ``extra``: more command-line flags."""
    assert CHROMIUM is not None
    user_dir = tempfile.mkdtemp(prefix="rtedge-chromium-")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={user_dir}",
        *extra,
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        shutil.rmtree(user_dir, ignore_errors=True)


class Reports:
    """What pages POST back to ``handle`` (JSON bodies), in order."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.items.append(json.loads(await request.text()))
        self.changed.set()
        return web.Response(text="ok")

    async def wait(self, key: str, within: float = 60) -> dict[str, Any]:
        """The first report holding ``key`` (or an ``error``)."""
        async with asyncio.timeout(scaled(within)):
            while True:
                for item in self.items:
                    if key in item or "error" in item:
                        return item
                self.changed.clear()
                await self.changed.wait()


async def start_site(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    return runner
