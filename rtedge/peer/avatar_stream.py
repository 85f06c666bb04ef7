"""Streams avatar frames (rtAV's ``response.output_image.delta``) while a response's audio plays.

Each tick reads the loudness of the audio the track is sending at that moment, so the mouth follows
what the client hears; when the audio drains or is cleared, ``response.output_image.done`` reports
``total_frames``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from rtedge.peer import avatar

Send = Callable[[dict[str, Any]], None]
#: How a call starts a task it owns (cancelled when the call closes): ``Call.spawn``.
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]

BLINK_EVERY_S = 3.0


class AvatarStream:
    def __init__(
        self, send: Send, level: Callable[[], float], fps: float, size: int, spawn: Spawn
    ) -> None:
        self._send = send
        self._level = level
        self._period = 1.0 / fps
        self._size = size
        self._spawn = spawn
        self._task: asyncio.Task[None] | None = None
        self._response_id: str | None = None
        self._item_id: str | None = None
        self.frames = 0
        self.total_sent = 0

    @property
    def response_id(self) -> str | None:
        return self._response_id

    def start(self, response_id: str, item_id: str) -> None:
        if self._response_id is not None:
            self.stop()
        self._response_id, self._item_id = response_id, item_id
        self.frames = 0
        self._task = self._spawn(self._loop(), f"avatar-{response_id}")

    def stop(self) -> None:
        """End the stream now and send ``response.output_image.done``."""
        if self._response_id is None:
            return
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._send(
            {
                "type": "response.output_image.done",
                "response_id": self._response_id,
                "item_id": self._item_id,
                "total_frames": self.frames,
            }
        )
        self._response_id = self._item_id = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        blink_every = max(1, round(BLINK_EVERY_S / self._period))
        due = loop.time()
        while True:
            level = avatar.mouth_level(self._level())
            eyes_open = self.frames % blink_every != blink_every - 1
            jpeg = avatar.cached_frame(self._size, level, eyes_open)
            if jpeg is None:
                # First use of this frame: encode off the loop (10-30 ms), then it is cached.
                jpeg = await loop.run_in_executor(
                    None, avatar.render_frame, self._size, level, eyes_open
                )
            self._send(
                {
                    "type": "response.output_image.delta",
                    "response_id": self._response_id,
                    "item_id": self._item_id,
                    "delta": jpeg,
                }
            )
            self.frames += 1
            self.total_sent += 1
            due += self._period
            await asyncio.sleep(max(0.0, due - loop.time()))
