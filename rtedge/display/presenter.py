"""Owns the sink and the display thread: opens the device with backoff, reports it in State,
prepares pictures and shows them. A missing or failing display never raises into the caller:
frames are dropped (counted) while it is down, and audio carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rtedge.backoff import Backoff
from rtedge.display.frames import Picture
from rtedge.display.geometry import DisplayError
from rtedge.display.sinks import Sink
from rtedge.media.jpeg import BadFrame
from rtedge.state import State

log = logging.getLogger(__name__)

DEVICE = "display"
T = TypeVar("T")


class Presenter:
    def __init__(
        self,
        sink: Sink,
        state: State,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        check_interval_s: float = 2.0,
    ) -> None:
        self.sink = sink
        self.state = state
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.check_interval_s = check_interval_s
        self.ready = False
        self.open_attempts = 0
        # One thread for everything the sink does: decode, scale, write. PyAV contexts and the
        # mapping are never touched from two threads, and writes keep their order.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtedge-display")
        self._failed = asyncio.Event()
        self._show_lock = asyncio.Lock()

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the display thread (e.g. drawing the avatar)."""
        result: T = await self._call(fn, *args)
        return result

    async def run(self) -> None:
        """Keep the sink open: open with jittered exponential backoff, check it now and then,
        reopen after a failure. Runs until cancelled."""
        # Jitter keeps a fleet of kiosks from retrying in lockstep after a shared fault.
        backoff = Backoff(self.retry_initial_s, self.retry_max_s, jitter=0.2)
        while True:
            self.open_attempts += 1
            try:
                detail = await self._call(self.sink.open)
            except (DisplayError, OSError, ValueError) as exc:
                reason = str(exc) or type(exc).__name__
                self._down(reason)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.ready = True
            self._failed.clear()
            self.state.set_device(DEVICE, True, detail)
            log.info("display open: %s", detail)
            await self._watch()
            self.ready = False
            with contextlib.suppress(Exception):
                await self._call(self.sink.close)

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.check_interval_s):
                    await self._failed.wait()
            if self._failed.is_set():
                return
            try:
                await self._call(self.sink.check)
            except (DisplayError, OSError, ValueError) as exc:
                self._down(str(exc) or type(exc).__name__)
                return

    def _down(self, reason: str) -> None:
        if self.ready or DEVICE not in self.state.devices or self.state.devices[DEVICE].ok:
            log.warning("display unavailable: %s", reason)
        self.ready = False
        self.state.set_device(DEVICE, False, reason)

    async def prepare(self, pic: Picture) -> tuple[bool, Any]:
        """(True, prepared) or (False, reason) when the frame cannot be shown."""
        if not self.ready:
            return False, "display_down"
        try:
            return True, await self._call(self.sink.prepare, pic)
        except BadFrame as exc:
            log.debug("bad frame: %s", exc)
            return False, "bad_frame"
        except (DisplayError, OSError, ValueError) as exc:
            self._fail(exc)
            return False, "display_down"

    async def show(self, prepared: Any) -> bool:
        if not self.ready:
            return False
        # Sources (service, video, avatar) run as separate tasks: one show at a time.
        async with self._show_lock:
            try:
                if self.sink.show_on_loop:
                    self.sink.show(prepared)
                else:
                    await self._call(self.sink.show, prepared)
            except (DisplayError, OSError, ValueError) as exc:
                self._fail(exc)
                return False
        return True

    def _fail(self, exc: BaseException) -> None:
        self._down(str(exc) or type(exc).__name__)
        self._failed.set()

    async def close(self) -> None:
        self.ready = False
        with contextlib.suppress(Exception):
            await self._call(self.sink.close)
        self._thread.shutdown(wait=False, cancel_futures=True)
